//! Wiring: the store, the notification engine, admission and the core, with their background tasks,
//! ready to be served by the HTTP and HTTPS listeners.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use appid::KeySet;
use registry::client::RegistryClient;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::admission::policy::{Mode, OnRevoke, Policy};
use crate::admission::profiles::{Profiles, ProfilesConfig};
use crate::config::CseConfig;
use crate::core::{Clock, Cse, Notifier, SystemClock};
use crate::http::HttpConfig;
use crate::notify::NotificationEngine;
use crate::store::decisions::DecisionLog;
use crate::store::sqlite::Durability;
use crate::store::{SqliteStore, Store};
use crate::tls::TrustMap;

/// Admission, when it is on: the policy, and how to reach and trust the registry.
#[derive(Clone)]
pub struct AdmissionConfig {
    pub policy: Policy,
    pub registry: RegistryClient,
    /// The registry's public keys: every answer must verify with one of them.
    pub keys: KeySet,
    /// Where to start following the change feed: a sequence number the caller read before the
    /// registry could change (`warden up` reads it in-process). `None` starts from the head when
    /// the feed is first reached.
    pub feed_from: Option<u64>,
}

/// Everything needed to build a CSE service.
#[derive(Clone)]
pub struct ServiceConfig {
    pub cse: CseConfig,
    pub http: HttpConfig,
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub admission: Option<AdmissionConfig>,
}

/// A running CSE: the core plus its background tasks (the expiry sweeper, and with admission the
/// change-feed follower and the trust-map refresher). Stop it with [`Service::shutdown`].
pub struct Service {
    pub cse: Arc<Cse>,
    pub http: HttpConfig,
    /// The roots the HTTPS listener trusts, per App-ID; kept current from the registry.
    pub trust: TrustMap,
    cancel: CancellationToken,
    tasks: TaskTracker,
    engine: Option<Arc<NotificationEngine>>,
}

impl Service {
    /// Opens the stores in `data_dir`, creates the CSEBase if needed, starts the notification
    /// engine and the background tasks.
    pub async fn start(cfg: ServiceConfig) -> anyhow::Result<Self> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&cfg.data_dir, cfg.durability)?);
        let engine = NotificationEngine::start(cfg.cse.notify_config())?;
        let mut svc = Self::start_with(cfg, store, engine.clone(), Arc::new(SystemClock)).await?;
        svc.engine = Some(engine);
        Ok(svc)
    }

    /// The same, on a given store and clock.
    pub async fn start_with(
        cfg: ServiceConfig,
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let trust = TrustMap::new();
        let (admission, revoked) = match cfg.admission.filter(|a| a.policy.admission.mode != Mode::Off) {
            None => (None, None),
            Some(ac) => {
                let pcfg = ProfilesConfig {
                    ttl: ac.policy.cache_ttl(),
                    max_stale: Duration::from_secs(ac.policy.admission.max_stale_seconds),
                    lookup_timeout: Duration::from_millis(ac.policy.admission.lookup_timeout_ms),
                };
                let profiles = Profiles::new(ac.registry, ac.keys, pcfg, Some(trust.clone()));
                let log = DecisionLog::open(&cfg.data_dir)?;
                // Revocations reach the CSE through this queue when the policy deletes AEs.
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                if ac.policy.admission.on_revoke == OnRevoke::Delete {
                    profiles.on_block(move |app_id| {
                        if tx.try_send(app_id).is_err() {
                            tracing::warn!("revocation queue full; AEs of a revoked App-ID stay blocked, not deleted");
                        }
                    });
                }
                tasks.spawn(profiles.clone().follow(ac.feed_from, cancel.clone()));
                tasks.spawn(profiles.clone().serve_trust_misses(cancel.clone()));
                (Some(Admission::new(ac.policy, profiles, log)), Some(rx))
            }
        };
        let cse = Cse::start(cfg.cse, store, notifier, clock, admission)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the CSE: {e}"))?;
        tasks.spawn(sweeper(cse.clone(), cancel.clone()));
        if let Some(mut rx) = revoked {
            let (cse, cancel) = (cse.clone(), cancel.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        id = rx.recv() => match id {
                            Some(app_id) => cse.remove_aes_of(&app_id).await,
                            None => return,
                        },
                    }
                }
            });
        }
        Ok(Self { cse, http: cfg.http, trust, cancel, tasks, engine: None })
    }

    /// The HTTP router of this CSE.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.cse.clone(), self.http.clone())
    }

    /// A token that is cancelled when the service shuts down (for the listeners).
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops the background tasks and waits for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(engine) = &self.engine {
            engine.shutdown(Duration::from_secs(5)).await;
        }
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
