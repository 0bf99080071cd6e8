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
    /// Where to start following the change feed when the store keeps no position yet: a sequence
    /// number the caller read before the registry could change (`warden up` reads it in-process).
    /// `None` starts from the head when the feed is first reached. The position the CSE applied is
    /// kept in its store and, when there is one, wins: what changed while the CSE was down is
    /// applied before it serves.
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
/// change-feed follower, the re-check of AEs admitted unverified and deletion on revocation). Stop
/// it with [`Service::shutdown`].
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
    /// engine and the background tasks. With admission, it first applies what the registry's change
    /// feed says changed since the position it stored (bounded in time; see
    /// [`Profiles::catch_up`]), so that an App-ID revoked while the CSE was down is blocked before
    /// the CSE serves.
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
        let mut feed = None;
        let (admission, removals) = match cfg.admission.filter(|a| a.policy.admission.mode != Mode::Off) {
            None => (None, None),
            Some(ac) => {
                let lookup_timeout = Duration::from_millis(ac.policy.admission.lookup_timeout_ms);
                let pcfg = ProfilesConfig {
                    ttl: ac.policy.cache_ttl(),
                    negative_ttl: ac.policy.negative_ttl(),
                    max_stale: Duration::from_secs(ac.policy.admission.max_stale_seconds),
                    lookup_timeout,
                    max_entries: crate::admission::profiles::MAX_CACHED,
                };
                let log = DecisionLog::with_max(store.clone(), ac.policy.admission.decision_log_max_entries);
                let profiles = Profiles::new(ac.registry, ac.keys, pcfg, Some(trust.clone()), Some(log.clone()));
                // AEs to delete reach the CSE through this queue when the policy deletes them.
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                let delete = ac.policy.admission.on_revoke == OnRevoke::Delete;
                if delete {
                    let tx = tx.clone();
                    profiles.on_block(move |app_id| {
                        if tx.try_send(Removal::AppId(app_id)).is_err() {
                            tracing::warn!("removal queue full; AEs of a revoked App-ID stay blocked, not deleted");
                        }
                    });
                }
                let admission = Admission::new(ac.policy, profiles.clone(), log);
                if delete {
                    admission.on_reject(move |stem| {
                        if tx.try_send(Removal::Ae(stem)).is_err() {
                            tracing::warn!("removal queue full; a refused AE stays blocked, not deleted");
                        }
                    });
                }
                feed = Some((profiles, ac.feed_from, lookup_timeout));
                (Some(admission), Some(rx))
            }
        };
        let cse = Cse::start(cfg.cse, store, notifier, clock, admission.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the CSE: {e}"))?;
        if let (Some((profiles, feed_from, lookup_timeout)), Some(admission)) = (feed, admission) {
            // The restored AEs are known now: catch up with the registry before serving them.
            let from = profiles.stored_feed_seq().await.or(feed_from);
            let deadline = (lookup_timeout * 5).clamp(Duration::from_secs(1), Duration::from_secs(10));
            let from = if profiles.catch_up(from, deadline).await { Some(profiles.feed_seq()) } else { from };
            // AEs admitted without the registry before the restart are checked again now, before they
            // are served: one refused by its check before the restart is refused again at once.
            if tokio::time::timeout(deadline, admission.reverify_once()).await.is_err() {
                tracing::warn!("checking the AEs admitted without the registry takes too long; it goes on later");
            }
            tasks.spawn(profiles.follow(from, cancel.clone()));
            tasks.spawn(admission.reverify(cancel.clone()));
        }
        tasks.spawn(sweeper(cse.clone(), cancel.clone()));
        if let Some(mut rx) = removals {
            let (cse, cancel) = (cse.clone(), cancel.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        r = rx.recv() => match r {
                            Some(Removal::AppId(app_id)) => cse.remove_aes_of(&app_id).await,
                            Some(Removal::Ae(stem)) => remove_ae(&cse, &stem).await,
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

/// What the removal queue carries.
enum Removal {
    /// Every AE of a revoked or suspended App-ID.
    AppId(onem2m::AppId),
    /// One AE, refused when it was checked again.
    Ae(String),
}

async fn remove_ae(cse: &Cse, stem: &str) {
    match cse.store.get(stem).await {
        Ok(Some(ae)) => {
            if let Err(e) = cse.remove(&ae, None).await {
                tracing::warn!(ae = %stem, error = %e, "cannot delete a refused AE");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(ae = %stem, error = %e, "cannot read a refused AE"),
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
