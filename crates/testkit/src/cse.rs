//! A CSE for tests: the real service (SQLite in a temporary directory, the real notification
//! engine) served by the real accept loop on 127.0.0.1:0, over plain HTTP and, when asked, HTTPS
//! with client certificates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cse::config::CseConfig;
use cse::http::HttpConfig;
use cse::net::NetLimits;
use cse::server::{AdmissionConfig, Service, ServiceConfig};
use cse::store::sqlite::Durability;
use cse::tls::{ClientAuth, TlsConfig};
use pki::ServerIdentity;
use tokio_util::sync::CancellationToken;

/// How to start a test CSE.
#[derive(Clone)]
pub struct CseOptions {
    pub cse: CseConfig,
    pub http: HttpConfig,
    pub admission: Option<AdmissionConfig>,
    /// Serve HTTPS too, with this identity and client-certificate mode.
    pub tls: Option<(std::sync::Arc<ServerIdentity>, ClientAuth)>,
}

impl Default for CseOptions {
    fn default() -> Self {
        Self {
            cse: CseConfig { upper_tester: true, ..CseConfig::default() },
            http: HttpConfig::default(),
            admission: None,
            tls: None,
        }
    }
}

/// A running test CSE. Dropping it leaves the listeners running until the test ends; call
/// [`TestCse::stop`] to stop it (and [`TestCse::restart`] to start again on the same data).
pub struct TestCse {
    pub url: String,
    pub https_url: Option<String>,
    pub service: Service,
    pub opts: CseOptions,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: CancellationToken,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl TestCse {
    pub async fn start(opts: CseOptions) -> Self {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = tmp.path().to_path_buf();
        Self::start_in(opts, dir, Some(tmp)).await
    }

    async fn start_in(opts: CseOptions, dir: PathBuf, tmp: Option<tempfile::TempDir>) -> Self {
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = plain.local_addr().expect("address");
        let mut cse_cfg = opts.cse.clone();
        cse_cfg.poa = vec![format!("http://{addr}")];
        let cfg = ServiceConfig {
            cse: cse_cfg,
            http: opts.http.clone(),
            data_dir: dir.clone(),
            durability: Durability::Process,
            admission: opts.admission.clone(),
        };
        let service = Service::start(cfg).await.expect("start the CSE");
        let stop = CancellationToken::new();
        let mut listeners = Vec::new();
        let router = service.router();
        let s = stop.clone();
        listeners.push(tokio::spawn(cse::net::serve(plain, None, router.clone(), NetLimits::default(), async move {
            s.cancelled().await
        })));
        let mut https_url = None;
        if let Some((identity, auth)) = &opts.tls {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            https_url = Some(format!("https://localhost:{}", l.local_addr().expect("address").port()));
            let chain = format!("{}{}", identity.leaf.cert_pem(), identity.ca.cert_pem());
            let tls =
                TlsConfig::new(chain.as_bytes(), identity.leaf.key_pem().as_bytes(), service.trust.clone(), *auth)
                    .expect("TLS configuration");
            let s = stop.clone();
            listeners.push(tokio::spawn(cse::net::serve(l, Some(tls), router, NetLimits::default(), async move {
                s.cancelled().await
            })));
        }
        Self { url: format!("http://{addr}"), https_url, service, opts, dir, _tmp: tmp, stop, listeners }
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the listeners and the service, and waits for them.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        for l in self.listeners.drain(..) {
            let _ = l.await;
        }
        self.service.shutdown().await;
    }

    /// Stops, runs `between` (e.g. a change at the registry while the CSE is down), and starts
    /// again on the same data directory (new ports).
    pub async fn restart_after(mut self, between: impl Future<Output = ()>) -> Self {
        self.stop().await;
        between.await;
        let tmp = self._tmp.take();
        let opts = self.opts.clone();
        let dir = self.dir.clone();
        Self::start_in(opts, dir, tmp).await
    }

    /// Stops and starts again on the same data directory (new ports).
    pub async fn restart(self) -> Self {
        self.restart_after(async {}).await
    }
}
