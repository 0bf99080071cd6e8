//! Wiring: the store, the notification engine, the core and its background tasks, ready to be served
//! by the HTTP listener(s).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::CseConfig;
use crate::core::{Clock, Cse, Notifier, SystemClock};
use crate::http::HttpConfig;
use crate::store::sqlite::Durability;
use crate::store::{SqliteStore, Store};

/// Everything needed to build a CSE service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub cse: CseConfig,
    pub http: HttpConfig,
    pub data_dir: PathBuf,
    pub durability: Durability,
}

/// A running CSE: the core plus its background tasks (the expiry sweeper). Dropping it does not
/// stop the tasks; call [`Service::shutdown`].
pub struct Service {
    pub cse: Arc<Cse>,
    pub http: HttpConfig,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Service {
    /// Opens the store in `data_dir`, creates the CSEBase if needed, and starts the sweeper.
    pub async fn start(cfg: ServiceConfig, notifier: Arc<dyn Notifier>) -> anyhow::Result<Self> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&cfg.data_dir, cfg.durability)?);
        Self::start_with(cfg.cse, cfg.http, store, notifier, Arc::new(SystemClock)).await
    }

    /// The same, on a given store and clock.
    pub async fn start_with(
        cse: CseConfig,
        http: HttpConfig,
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let cse =
            Cse::start(cse, store, notifier, clock).await.map_err(|e| anyhow::anyhow!("cannot start the CSE: {e}"))?;
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(sweeper(cse.clone(), cancel.clone()));
        Ok(Self { cse, http, cancel, tasks })
    }

    /// The HTTP router of this CSE.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.cse.clone(), self.http.clone())
    }

    /// Stops the background tasks and waits for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Removes expired resources, as often as the tunables say.
async fn sweeper(cse: Arc<Cse>, cancel: CancellationToken) {
    loop {
        let every = cse.tunables().expiration_check;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match cse.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "expired resources removed"),
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
        }
    }
}
