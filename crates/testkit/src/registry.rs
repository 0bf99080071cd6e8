//! A registry for tests: the real service on a temporary directory, on 127.0.0.1:0.

use std::sync::Arc;

use registry::{Registry, RegistryClient, RegistryConfig};
use tokio_util::sync::CancellationToken;

/// The admin token of test registries.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running test registry.
pub struct TestRegistry {
    pub url: String,
    pub registry: Arc<Registry>,
    stop: CancellationToken,
    _tmp: tempfile::TempDir,
}

impl TestRegistry {
    pub async fn start() -> Self {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let mut cfg = RegistryConfig::new(tmp.path());
        cfg.admin_token = Some(ADMIN_TOKEN.into());
        let registry = Arc::new(Registry::open(cfg).await.expect("open the registry"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        let (r, s) = (registry.clone(), stop.clone());
        tokio::spawn(async move {
            let _ = r.serve(listener, async move { s.cancelled().await }).await;
        });
        Self { url, registry, stop, _tmp: tmp }
    }

    /// A client with the admin token.
    pub fn admin(&self) -> RegistryClient {
        RegistryClient::new(&self.url, Some(ADMIN_TOKEN.into())).expect("client")
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}
