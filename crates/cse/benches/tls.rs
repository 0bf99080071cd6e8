//! What the TLS layer costs: the per-App-ID verifier inside a handshake, the post-handshake
//! identification, and trust-map updates. Handshakes run in memory (no sockets), so the numbers are
//! CPU only. A plain harness (no dependency): each case reports the median of several samples.
//!
//! Run: `cargo bench -p cse --bench tls`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cse::tls::{ClientAuth, TlsConfig, TrustMap};
use onem2m::AppId;
use pki::{DeviceSpec, Fingerprint, Identity, Root, ServerIdentity};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::{ServerName, UnixTime};

const APP: &str = "Racme01.com.acme.thermostat";

/// Runs `f` in batches for about `budget`, and prints the median time per call.
fn bench(name: &str, budget: Duration, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut per_batch = 1u32;
    while start.elapsed() < budget / 20 {
        for _ in 0..per_batch {
            f();
        }
        per_batch = per_batch.saturating_mul(2);
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < budget && samples.len() < 50) {
        let t = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        samples.push(t.elapsed() / per_batch);
    }
    samples.sort();
    println!("{name:<58} {:>12.1?} / iter", samples[samples.len() / 2]);
}

fn client_config(server: &ServerIdentity, device: Option<&Identity>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(server.ca.cert_der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match device {
        Some(d) => builder.with_client_auth_cert(d.cert_chain().unwrap(), d.key_der().unwrap()).unwrap(),
        None => builder.with_no_client_auth(),
    };
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// One full handshake in memory; returns the server side.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> ServerConnection {
    let mut c = ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() || c.wants_write() || s.wants_write() {
        while c.wants_write() {
            buf.clear();
            c.write_tls(&mut buf).unwrap();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            s.process_new_packets().unwrap();
        }
        while s.wants_write() {
            buf.clear();
            s.write_tls(&mut buf).unwrap();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
            }
            c.process_new_packets().unwrap();
        }
    }
    s
}

fn main() {
    let budget = Duration::from_secs(2);
    let app = AppId::parse(APP).unwrap();
    let server = ServerIdentity::localhost().unwrap();
    let root = Root::generate("Acme Device Root").unwrap();
    let others: Vec<Root> = (0..2).map(|i| Root::generate(&format!("Other {i}")).unwrap()).collect();
    let device = root.issue_device(&DeviceSpec::new(app.clone())).unwrap();
    let chain = [device.cert_der().clone()];

    bench("pki::san::claims (parse the SANs)", budget, || {
        black_box(pki::san::claims(black_box(device.cert_der())).unwrap());
    });
    bench("Fingerprint::of (SHA-256 of the DER)", budget, || {
        black_box(Fingerprint::of(black_box(device.cert_der())));
    });

    let trust = TrustMap::with_provider(provider());
    trust.update_one(app.clone(), vec![root.cert_der().clone()]).unwrap();
    bench("TrustMap::identify, 1 root", budget, || {
        black_box(trust.identify(&chain, UnixTime::now()).unwrap());
    });
    let three = TrustMap::with_provider(provider());
    let roots = others.iter().chain([&root]).map(|r| r.cert_der().clone()).collect();
    three.update_one(app.clone(), roots).unwrap();
    bench("TrustMap::identify, 3 roots (match is the last)", budget, || {
        black_box(three.identify(&chain, UnixTime::now()).unwrap());
    });

    // Handshakes: without a client certificate, with one through our verifier, and with one through
    // a bare WebPkiClientVerifier for the same root (the overhead of choosing roots by App-ID).
    let pem = |s: &str| s.as_bytes().to_vec();
    let ours =
        TlsConfig::new(&pem(server.leaf.cert_pem()), &pem(server.leaf.key_pem()), trust.clone(), ClientAuth::Optional)
            .unwrap();
    let anonymous = client_config(&server, None);
    let with_cert = client_config(&server, Some(&device));
    bench("TLS 1.3 handshake, no client certificate", budget, || {
        black_box(handshake(ours.server_config(), &anonymous));
    });
    bench("TLS 1.3 handshake, client certificate, per-App-ID verifier", budget, || {
        black_box(handshake(ours.server_config(), &with_cert));
    });
    let mut store = RootCertStore::empty();
    store.add(root.cert_der().clone()).unwrap();
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider()).build().unwrap();
    let mut bare = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(webpki)
        .with_single_cert(server.leaf.cert_chain().unwrap(), server.leaf.key_der().unwrap())
        .unwrap();
    bare.alpn_protocols = ours.server_config().alpn_protocols.clone();
    let bare = Arc::new(bare);
    bench("TLS 1.3 handshake, client certificate, bare WebPkiClientVerifier", budget, || {
        black_box(handshake(&bare, &with_cert));
    });
    bench("TLS 1.3 handshake + identify (the chain check)", budget, || {
        let s = handshake(ours.server_config(), &with_cert);
        black_box(trust.identify(s.peer_certificates().unwrap(), UnixTime::now()).unwrap());
    });
    bench("TLS 1.3 handshake + identify_connection (what cse::net does)", budget, || {
        let s = handshake(ours.server_config(), &with_cert);
        let id = trust.identify_connection(&s, UnixTime::now());
        assert!(matches!(id, cse::tls::ClientIdentity::Verified(_)));
        black_box(id);
    });

    // Updates with 10 000 App-IDs in the map.
    let many = TrustMap::with_provider(provider());
    let entries: HashMap<AppId, _> =
        (0..10_000).map(|i| (AppId::parse(&format!("N{i}")).unwrap(), vec![root.cert_der().clone()])).collect();
    let t = Instant::now();
    many.set(entries).unwrap();
    println!("{:<58} {:>12.1?}", "TrustMap::set, 10 000 App-IDs (once)", t.elapsed());
    bench("TrustMap::update_one with 10 000 App-IDs in the map", budget, || {
        many.update_one(app.clone(), vec![root.cert_der().clone()]).unwrap();
    });
}
