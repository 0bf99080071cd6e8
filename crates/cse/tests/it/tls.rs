//! `cse::net` and `cse::tls` end to end: real sockets, real TLS, certificates made at run time, and a
//! tiny router that echoes the `Peer` it sees. A certificate that does not verify still makes a
//! connection (its requests get a oneM2M refusal with the reason); the `Peer` says why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::routing::get;
use axum::{Json, Router};
use cse::net::{NetLimits, Peer, Transport, serve};
use cse::tls::{ClientAuth, TlsConfig, TrustMap};
use onem2m::AppId;
use serde_json::{Value, json};
use testkit::pki::{
    Identity, Root, ServerIdentity, device, device_with_ae_id, device_without_app_id, expired_device, https_client,
    server_identity, vendor_root,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

const APP_A: &str = "Racme01.com.acme.thermostat";
const APP_B: &str = "Rbeta01.com.beta.meter";
/// Long enough for any step of these tests on a loaded machine; reached only when a test fails.
const DEADLINE: Duration = Duration::from_secs(20);

fn app(s: &str) -> AppId {
    AppId::parse(s).unwrap()
}

/// The handlers' view of the world: `/whoami` echoes the peer; `/slow` reports that it started and
/// then waits until the test releases it.
#[derive(Clone)]
struct Gate {
    started: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
}

fn router(gate: Gate) -> Router {
    async fn whoami(Extension(peer): Extension<Peer>, version: http::Version) -> Json<Value> {
        let id = peer.identity.as_deref();
        let unverified = peer.unverified.as_deref();
        Json(json!({
            "remote_ip": peer.remote_addr.ip().to_string(),
            "remote_port": peer.remote_addr.port(),
            "unverified": unverified.map(|u| u.error.reason()),
            "claimed_app_id": unverified.and_then(|u| u.app_id.as_ref().map(ToString::to_string)),
            "transport": match peer.transport { Transport::Plain => "plain", Transport::Tls => "tls" },
            "version": format!("{version:?}"),
            "app_id": id.map(|i| i.app_id.to_string()),
            "ae_id_uri": id.and_then(|i| i.ae_id_uri.clone()),
            "ae_id": id.and_then(|i| i.ae_id.as_ref().map(ToString::to_string)),
            "cert_sha256": id.map(|i| i.cert_sha256.to_hex()),
            "root_sha256": id.map(|i| i.root_sha256.to_hex()),
        }))
    }
    async fn slow(State(gate): State<Gate>) -> &'static str {
        let _ = gate.started.send(());
        gate.release.notified().await;
        "done"
    }
    Router::new().route("/whoami", get(whoami)).route("/slow", get(slow)).with_state(gate)
}

struct TestServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    started: mpsc::UnboundedReceiver<()>,
    release: Arc<Notify>,
}

impl TestServer {
    async fn start(tls: Option<TlsConfig>, limits: NetLimits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let (started_tx, started) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let app = router(Gate { started: started_tx, release: release.clone() });
        let task = tokio::spawn(serve(listener, tls, app, limits, async {
            let _ = rx.await;
        }));
        Self { addr, shutdown: Some(tx), task, started, release }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Asks the server to stop and waits for `serve` to return.
    async fn stop(mut self) {
        let _ = self.shutdown.take().map(|tx| tx.send(()));
        tokio::time::timeout(DEADLINE, self.task).await.expect("serve returns").unwrap();
    }
}

/// A TLS server with its PKI: vendor A's root trusted for App-ID A, B's for B.
struct Tls {
    server: ServerIdentity,
    root_a: Root,
    root_b: Root,
    trust: TrustMap,
    srv: TestServer,
}

async fn start_tls(auth: ClientAuth, limits: NetLimits) -> Tls {
    let server = server_identity();
    let (root_a, root_b) = (vendor_root("Acme"), vendor_root("Beta"));
    let trust = TrustMap::new();
    trust
        .set(HashMap::from([
            (app(APP_A), vec![root_a.cert_der().clone()]),
            (app(APP_B), vec![root_b.cert_der().clone()]),
        ]))
        .unwrap();
    let cfg = TlsConfig::new(server.leaf.cert_pem().as_bytes(), server.leaf.key_pem().as_bytes(), trust.clone(), auth)
        .unwrap();
    let srv = TestServer::start(Some(cfg), limits).await;
    Tls { server, root_a, root_b, trust, srv }
}

impl Tls {
    /// GET /whoami over a fresh connection (a new client each time, so every call is a new handshake).
    async fn whoami(&self, device: Option<&Identity>) -> reqwest::Result<Value> {
        let client = https_client(&self.server.ca, device).build().unwrap();
        client.get(self.srv.url("https", "/whoami")).send().await?.error_for_status()?.json().await
    }
}

#[tokio::test]
async fn right_root_is_accepted_and_the_identity_reaches_the_handler() {
    let t = start_tls(ClientAuth::Required, NetLimits::default()).await;
    let dev = device_with_ae_id(&t.root_a, APP_A, "//acme.example.com/Sdev0001");
    let mut seen = t.whoami(Some(&dev)).await.unwrap();
    assert!(seen.as_object_mut().unwrap().remove("remote_port").is_some());
    assert_eq!(
        seen,
        json!({
            "remote_ip": "127.0.0.1",
            "unverified": null,
            "claimed_app_id": null,
            "transport": "tls",
            "version": "HTTP/2.0",
            "app_id": APP_A,
            "ae_id_uri": "//acme.example.com/Sdev0001",
            "ae_id": "//acme.example.com/Sdev0001",
            "cert_sha256": dev.fingerprint().to_hex(),
            "root_sha256": t.root_a.fingerprint().to_hex(),
        })
    );

    // Without an AE-ID SAN, over TLS 1.2 and HTTP/1.1.
    let plain_dev = device(&t.root_b, APP_B);
    let client = https_client(&t.server.ca, Some(&plain_dev))
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .http1_only()
        .build()
        .unwrap();
    let seen: Value = client.get(t.srv.url("https", "/whoami")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["app_id"], APP_B);
    assert_eq!((&seen["ae_id_uri"], &seen["ae_id"]), (&Value::Null, &Value::Null));
    assert_eq!(seen["cert_sha256"], plain_dev.fingerprint().to_hex());
    assert_eq!(seen["root_sha256"], t.root_b.fingerprint().to_hex());
    t.srv.stop().await;
}

#[tokio::test]
async fn wrong_root_expired_unknown_and_claimless_certificates_are_served_unverified() {
    let t = start_tls(ClientAuth::Required, NetLimits::default()).await;
    let stranger = vendor_root("Gamma");
    let cases = [
        ("A's App-ID under B's root", device(&t.root_b, APP_A), "wrong_root", Some(APP_A)),
        ("expired", expired_device(&t.root_a, APP_A), "expired", Some(APP_A)),
        (
            "unknown App-ID",
            device(&stranger, "Rgamma01.com.gamma.lock"),
            "unknown_app_id",
            Some("Rgamma01.com.gamma.lock"),
        ),
        ("no App-ID SAN", device_without_app_id(&t.root_a), "no_app_id", None),
        ("the server's own certificate", t.server.leaf.clone(), "no_app_id", None),
    ];
    for (case, dev, reason, claimed) in &cases {
        let seen = t.whoami(Some(dev)).await.unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(seen["app_id"], Value::Null, "{case}: no identity");
        assert_eq!(seen["unverified"], *reason, "{case}");
        assert_eq!(seen["claimed_app_id"], json!(claimed), "{case}");
        assert_eq!(seen["cert_sha256"], Value::Null, "{case}");
    }
    // A good device still gets its identity.
    assert_eq!(t.whoami(Some(&device(&t.root_a, APP_A))).await.unwrap()["app_id"], APP_A);
    t.srv.stop().await;
}

#[tokio::test]
async fn client_certificates_optional_or_required() {
    let required = start_tls(ClientAuth::Required, NetLimits::default()).await;
    assert!(required.whoami(None).await.is_err(), "Required: no certificate, no connection");
    required.srv.stop().await;

    let optional = start_tls(ClientAuth::Optional, NetLimits::default()).await;
    let seen = optional.whoami(None).await.unwrap();
    assert_eq!((&seen["transport"], &seen["app_id"], &seen["unverified"]), (&json!("tls"), &Value::Null, &Value::Null));
    let dev = device(&optional.root_a, APP_A);
    assert_eq!(optional.whoami(Some(&dev)).await.unwrap()["cert_sha256"], dev.fingerprint().to_hex());
    // A certificate that is presented must still verify: it gives no identity.
    let seen = optional.whoami(Some(&device(&optional.root_b, APP_A))).await.unwrap();
    assert_eq!((&seen["app_id"], &seen["unverified"]), (&Value::Null, &json!("wrong_root")));
    optional.srv.stop().await;
}

#[tokio::test]
async fn trust_map_changes_apply_to_the_next_handshake_and_to_unverified_connections() {
    let t = start_tls(ClientAuth::Required, NetLimits::default()).await;
    let gamma = "Rgamma01.com.gamma.lock";
    let root_g = vendor_root("Gamma");
    let dev = device(&root_g, gamma);
    // One client, one kept-alive connection.
    let client = https_client(&t.server.ca, Some(&dev)).build().unwrap();
    let ask =
        async || -> Value { client.get(t.srv.url("https", "/whoami")).send().await.unwrap().json().await.unwrap() };
    let first = ask().await;
    assert_eq!(first["unverified"], "unknown_app_id");

    // The App-ID's roots are learned: the same connection is identified at its next request.
    t.trust.update_one(app(gamma), vec![root_g.cert_der().clone()]).unwrap();
    let second = ask().await;
    assert_eq!(second["remote_port"], first["remote_port"], "the same connection");
    assert_eq!(second["root_sha256"], root_g.fingerprint().to_hex());
    assert_eq!(t.whoami(Some(&dev)).await.unwrap()["root_sha256"], root_g.fingerprint().to_hex());

    // Roots rotate: A's old root is replaced; its devices are unverified, the new root's are identified.
    t.trust.update_one(app(APP_A), vec![root_g.cert_der().clone()]).unwrap();
    assert_eq!(t.whoami(Some(&device(&t.root_a, APP_A))).await.unwrap()["unverified"], "wrong_root");
    assert_eq!(t.whoami(Some(&device(&root_g, APP_A))).await.unwrap()["app_id"], APP_A);

    t.trust.remove(&app(gamma));
    assert_eq!(t.whoami(Some(&dev)).await.unwrap()["unverified"], "unknown_app_id");
    t.srv.stop().await;
}

#[tokio::test]
async fn a_client_that_never_says_hello_blocks_no_one_and_is_dropped() {
    let limits = NetLimits { tls_handshake_timeout: Duration::from_millis(300), ..NetLimits::default() };
    let t = start_tls(ClientAuth::Required, limits).await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(t.srv.addr).await.unwrap();

    // Others are served while the silent client waits for its timeout.
    assert_eq!(t.whoami(Some(&device(&t.root_a, APP_A))).await.unwrap()["app_id"], APP_A);

    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(DEADLINE, silent.read(&mut buf)).await.expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
    assert!(opened.elapsed() >= limits.tls_handshake_timeout, "dropped only after the timeout");
    t.srv.stop().await;
}

#[tokio::test]
async fn plain_http_through_the_same_loop() {
    let srv = TestServer::start(None, NetLimits::default()).await;
    let client = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    let seen: Value = client.get(srv.url("http", "/whoami")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (&seen["transport"], &seen["version"], &seen["app_id"]),
        (&json!("plain"), &json!("HTTP/1.1"), &Value::Null)
    );
    // HTTP/2 with prior knowledge (h2c) is recognised by its preface.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().timeout(DEADLINE).build().unwrap();
    let seen: Value = h2.get(srv.url("http", "/whoami")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
    srv.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let limits = NetLimits { max_connections: 1, idle_timeout: Duration::from_millis(300), ..NetLimits::default() };
    let srv = TestServer::start(None, limits).await;
    let opened = Instant::now();
    // Takes the only slot and sends nothing: idle, it is closed after `idle_timeout`.
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    let client = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    let seen: Value = client.get(srv.url("http", "/whoami")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["transport"], "plain");
    assert!(opened.elapsed() >= limits.idle_timeout, "served only once the idle connection was closed");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(DEADLINE, silent.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    srv.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let mut srv = TestServer::start(None, NetLimits::default()).await;
    let url = srv.url("http", "/slow");
    let request = tokio::spawn(async move {
        let client = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
        client.get(url).send().await?.text().await
    });
    tokio::time::timeout(DEADLINE, srv.started.recv()).await.unwrap().unwrap();

    let _ = srv.shutdown.take().unwrap().send(());
    // The listener closes: poll until new connections are refused.
    let until = Instant::now() + DEADLINE;
    while TcpStream::connect(srv.addr).await.is_ok() {
        assert!(Instant::now() < until, "the listener should close");
        tokio::task::yield_now().await;
    }
    assert!(!srv.task.is_finished(), "serve waits for the request in flight");
    srv.release.notify_one();
    assert_eq!(tokio::time::timeout(DEADLINE, request).await.unwrap().unwrap().unwrap(), "done");
    tokio::time::timeout(DEADLINE, srv.task).await.expect("serve returns").unwrap();
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let limits = NetLimits { grace_period: Duration::from_millis(200), ..NetLimits::default() };
    let mut srv = TestServer::start(None, limits).await;
    let url = srv.url("http", "/slow");
    let request = tokio::spawn(async move { reqwest::Client::new().get(url).send().await });
    tokio::time::timeout(DEADLINE, srv.started.recv()).await.unwrap().unwrap();
    let stopping = Instant::now();
    // The handler is never released: serve gives up on it after the grace period.
    let _ = srv.shutdown.take().unwrap().send(());
    tokio::time::timeout(DEADLINE, srv.task).await.expect("serve returns").unwrap();
    assert!(stopping.elapsed() >= limits.grace_period);
    assert!(tokio::time::timeout(DEADLINE, request).await.unwrap().unwrap().is_err(), "the request was cut off");
}
