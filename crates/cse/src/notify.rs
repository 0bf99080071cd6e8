//! Notification delivery: the [`Notifier`] the request-processing core hands its notifications to.
//!
//! The core decides *what* to send and *to whom* ([`NotifyTarget`]); this module sends it as a oneM2M
//! NOTIFY over the HTTP binding (TS-0009 §6, TS-0004 §7.5.1): a `POST` with the notification as its
//! JSON body, `X-M2M-Origin` set to the CSE-ID, a fresh `X-M2M-RI`, `X-M2M-RVI`, and
//! `Content-Type: application/json` without `ty=` (which is how the receiver tells a NOTIFY from a
//! CREATE).
//!
//! # Queues and workers
//! Each target (keyed by [`NotifyTarget::key`]) has its own bounded FIFO queue and one worker task that
//! delivers its notifications one at a time, in order. The worker is started by the first notification
//! for the target and ends after [`NotifyConfig::idle_timeout`] without work, so one-off targets do not
//! keep tasks alive. [`Notifier::enqueue`] never waits: a full queue, too many targets, or too many bytes
//! queued overall drop the notification and count it.
//!
//! # Delivery
//! One *pass* tries the target's URLs in order until one answers. A connection failure, a timeout or a
//! `5xx` (also `408` and `429`, which HTTP defines as "try later") moves on to the next URL; any other
//! answer ends the pass. Delivered means a `2xx` whose `X-M2M-RSC` is `2xxx`, or a `2xx` without the
//! header. A pass that only met transient failures is repeated after an exponential backoff with
//! jitter, at most [`NotifyConfig::retries`] times; then the notification is given up and counted as
//! failed. A retry sends the same `X-M2M-RI`, so a receiver can recognise a repeat. Redirects are not
//! followed (a `3xx` is a failure): a notification goes where the subscriber said, and nowhere else.
//!
//! # A dead target cannot starve live ones
//! - **Permits per attempt.** Every HTTP request of a queued notification holds a permit of a bounded
//!   pool for that request only: not across the URLs of a pass, and never while backing off. Tokio's
//!   semaphore is first-come first-served, so waiting workers take turns.
//! - **Two pools.** A URL that answered its last request (any HTTP answer) is *proven*, and its
//!   requests take permits from [`NotifyConfig::max_in_flight`]. Every other URL (new, or one whose
//!   last request got no answer) takes them from the separate, smaller
//!   [`NotifyConfig::max_in_flight_unproven`]. Any number of black-hole targets (they accept the
//!   connection and never answer) can therefore hold at most the unproven pool, and a proven target
//!   that turns into one holds a proven permit for one request at most.
//! - **Circuit breaker.** A target whose notification was given up (every pass met transient
//!   failures: no answer, or `5xx`, `408`, `429`) is *open* for [`NotifyConfig::circuit_cooldown`], doubling at each further give-up up to
//!   [`NotifyConfig::max_circuit_cooldown`]: notifications for it fail at once, without a request,
//!   and release their bytes. The first one after the cooldown is sent again (half-open); a final
//!   answer (accepted or refused) closes the circuit, another give-up reopens it. A worker with an open circuit stays until the
//!   cooldown has passed, so an idle dead target does not come back closed.
//! - **Timeouts.** A connection must be established within [`NotifyConfig::connect_timeout`] and a
//!   request answered within [`NotifyConfig::request_timeout`].
//!
//! Everything stays bounded: permits (the two pools), tasks and queues ([`NotifyConfig::max_targets`],
//! [`NotifyConfig::queue_depth`]), bytes ([`NotifyConfig::max_queued_bytes`]) and the per-target state
//! (a few URLs).
//!
//! # Release version
//! Notifications carry `X-M2M-RVI: 3` by default. The notification we send (`m2m:sgn` with `nev`,
//! `sur`, `cr`, `vrq`, `sud`) is the same in releases 3, 4 and 5; a release-4 or -5 receiver accepts a
//! release-3 request, while a release-3 receiver may answer `4001` to a release-4 one (ACME does, for
//! releases it does not support). So "3" is the version the most receivers accept.
//!
//! # Metrics
//! Through the `metrics` facade; the engine installs the process's recorder when it starts
//! ([`crate::telemetry::install`]), so nothing it records is lost:
//! - `cse_notifications_total{result="delivered|failed|dropped"}`: counter, queued and immediate
//!   ([`Notifier::send_now`]) notifications alike;
//! - `cse_notification_queue_depth`: gauge, notifications waiting in queues now, over all targets. One
//!   total on purpose: a series per target would be unbounded (up to `max_targets` series, keyed by
//!   subscriber URLs that may carry credentials); `cse_notification_targets` and
//!   `cse_notification_circuits_open` say how it is spread;
//! - `cse_notification_targets`: gauge, targets with a live queue and worker;
//! - `cse_notification_circuits_open`: gauge, targets whose circuit is open now;
//! - `cse_notification_delivery_seconds{result="delivered|failed"}`: histogram, from enqueueing to the
//!   end of delivery (queue wait and retries included).
//!
//! # Runtime and shutdown
//! [`NotificationEngine::start`] must be called inside a tokio runtime: the workers run on it.
//! [`NotificationEngine::shutdown`] stops taking notifications, lets the workers deliver what is queued
//! for a grace period and then stops them; dropping the engine stops the workers at once. Notifications
//! still queued then are counted as dropped.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use onem2m::{CseId, Error, ReleaseVersion, Rsc};
use parking_lot::Mutex;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::{Notifier, NotifyTarget};

#[cfg(test)]
mod tests;

const M_TOTAL: &str = "cse_notifications_total";
const M_QUEUE_DEPTH: &str = "cse_notification_queue_depth";
const M_TARGETS: &str = "cse_notification_targets";
const M_LATENCY: &str = "cse_notification_delivery_seconds";
const M_OPEN: &str = "cse_notification_circuits_open";

/// URLs remembered per target as proven; more are forgotten (and start over as unproven).
const MAX_PROVEN_URLS: usize = 8;

const X_M2M_ORIGIN: HeaderName = HeaderName::from_static("x-m2m-origin");
const X_M2M_RI: HeaderName = HeaderName::from_static("x-m2m-ri");
const X_M2M_RVI: HeaderName = HeaderName::from_static("x-m2m-rvi");
const X_M2M_RSC: &str = "x-m2m-rsc";
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The most of an answer's body that is read (and thrown away) so that its connection can be reused.
const MAX_ANSWER_BODY: usize = 64 * 1024;
/// How long reading that body may take; the status and `X-M2M-RSC` are known before.
const ANSWER_BODY_TIMEOUT: Duration = Duration::from_secs(1);

/// How the engine delivers. [`Default`] gives the values documented on each field, for the CSE-ID
/// `/id-in`; [`NotifyConfig::new`] the same for another CSE-ID.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `X-M2M-Origin` of every notification: this CSE's ID.
    pub originator: CseId,
    /// `X-M2M-RVI` of every notification. Default 3 (see the module documentation).
    pub release_version: ReleaseVersion,
    /// Notifications waiting per target, at most; more are dropped. Default 1000.
    pub queue_depth: usize,
    /// Targets with a queue at the same time, at most; notifications for more are dropped. Default 10 000.
    pub max_targets: usize,
    /// Bytes of notification bodies held by the engine (queued or being delivered), at most, over all
    /// targets; notifications beyond are dropped. Default 64 MiB.
    pub max_queued_bytes: usize,
    /// Requests of queued notifications to proven URLs (see the module documentation) under way at
    /// the same time, at most (each holds a connection). Default 512.
    pub max_in_flight: usize,
    /// Requests of queued notifications to URLs not proven (new, or silent at their last request)
    /// under way at the same time, at most. Default 64.
    pub max_in_flight_unproven: usize,
    /// Time to establish a connection (TCP and TLS). Default 2 s.
    pub connect_timeout: Duration,
    /// Time for one HTTP request, from connecting to the end of the answer. Default 10 s.
    pub request_timeout: Duration,
    /// Passes over the target's URLs after the first one failed transiently. Default 3.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one, up to `max_backoff`. The
    /// actual wait is drawn between half of it and all of it. Default 500 ms.
    pub backoff: Duration,
    /// The longest wait between retries. Default 10 s.
    pub max_backoff: Duration,
    /// A target's worker ends after this long without notifications. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a target's circuit stays open after a notification to it was given up. Default 30 s.
    pub circuit_cooldown: Duration,
    /// The longest a circuit stays open (the cooldown doubles up to it). Default 10 min.
    pub max_circuit_cooldown: Duration,
    /// Idle connections kept open per host. Default 4.
    pub pool_max_idle_per_host: usize,
    /// Idle connections are closed after this long. Default 30 s.
    pub pool_idle_timeout: Duration,
}

impl NotifyConfig {
    /// The defaults, sending as `originator`.
    pub fn new(originator: CseId) -> Self {
        Self {
            originator,
            release_version: ReleaseVersion::V3,
            queue_depth: 1000,
            max_targets: 10_000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_in_flight: 512,
            max_in_flight_unproven: 64,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            circuit_cooldown: Duration::from_secs(30),
            max_circuit_cooldown: Duration::from_secs(600),
            pool_max_idle_per_host: 4,
            pool_idle_timeout: Duration::from_secs(30),
        }
    }

    /// Checks that every setting is usable; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            (self.queue_depth, "queue_depth"),
            (self.max_targets, "max_targets"),
            (self.max_queued_bytes, "max_queued_bytes"),
            (self.max_in_flight, "max_in_flight"),
            (self.max_in_flight_unproven, "max_in_flight_unproven"),
        ];
        if let Some((_, name)) = positive.iter().find(|(n, _)| *n == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        for (n, name) in
            [(self.max_in_flight, "max_in_flight"), (self.max_in_flight_unproven, "max_in_flight_unproven")]
        {
            if n > Semaphore::MAX_PERMITS {
                return Err(format!("{name} must be at most {}", Semaphore::MAX_PERMITS));
            }
        }
        let durations = [
            (self.connect_timeout, "connect_timeout"),
            (self.request_timeout, "request_timeout"),
            (self.idle_timeout, "idle_timeout"),
            (self.circuit_cooldown, "circuit_cooldown"),
            (self.pool_idle_timeout, "pool_idle_timeout"),
        ];
        if let Some((_, name)) = durations.iter().find(|(d, _)| d.is_zero()) {
            return Err(format!("{name} must be longer than zero"));
        }
        if self.max_circuit_cooldown < self.circuit_cooldown {
            return Err("max_circuit_cooldown must not be shorter than circuit_cooldown".into());
        }
        if !self.release_version.is_supported() {
            return Err(format!("release version {} is not supported", self.release_version));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), StartError> {
        self.validate().map_err(StartError::Config)?;
        Ok(())
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self::new(CseId::parse("/id-in").expect("valid"))
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("notification settings: {0}")]
    Config(String),
    #[error("the notification engine must be started inside a tokio runtime")]
    NoRuntime,
    #[error("cannot build the notification HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What the engine has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Accepted by their receiver.
    pub delivered: u64,
    /// Refused by their receiver, or given up after the retries.
    pub failed: u64,
    /// Not delivered for lack of room (queue, targets, bytes) or because the engine stopped.
    pub dropped: u64,
    /// Waiting in queues now.
    pub queued: usize,
    /// Bytes of bodies held now (queued or being delivered).
    pub held_bytes: usize,
    /// Targets with a live queue now.
    pub targets: usize,
}

/// The notification delivery engine. Share it as `Arc<dyn Notifier>`; keep an `Arc` of the engine
/// itself for [`NotificationEngine::shutdown`] and [`NotificationEngine::stats`].
pub struct NotificationEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NotificationEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationEngine").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl NotificationEngine {
    /// Starts an engine. Must be called inside a tokio runtime, on which the workers will run.
    pub fn start(cfg: NotifyConfig) -> Result<Arc<Self>, StartError> {
        cfg.check()?;
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(StartError::Client)?;
        Self::start_with_client(cfg, client)
    }

    /// Starts an engine that sends through `client`, e.g. one with a TLS client identity or private
    /// roots. The client should have a connect timeout and no redirects; the engine sets the request
    /// timeout on each request itself.
    pub fn start_with_client(cfg: NotifyConfig, client: reqwest::Client) -> Result<Arc<Self>, StartError> {
        cfg.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        crate::telemetry::install();
        describe_metrics();
        let origin = HeaderValue::from_str(cfg.originator.as_str())
            .map_err(|_| StartError::Config(format!("originator {} is not a valid header value", cfg.originator)))?;
        let rvi = HeaderValue::from_static(cfg.release_version.as_str());
        let shared = Shared {
            proven_permits: Semaphore::new(cfg.max_in_flight),
            unproven_permits: Semaphore::new(cfg.max_in_flight_unproven),
            cfg,
            client,
            runtime,
            origin,
            rvi,
            queues: Mutex::new(Queues::default()),
            counters: Counters::default(),
            rqi_prefix: rqi_prefix(),
            rqi_seq: AtomicU64::new(0),
            draining: CancellationToken::new(),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };
        Ok(Arc::new(Self { shared: Arc::new(shared) }))
    }

    /// Counts of what happened so far, and what is queued now.
    pub fn stats(&self) -> NotifyStats {
        let c = &self.shared.counters;
        NotifyStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            held_bytes: c.held_bytes.load(Ordering::Relaxed),
            targets: self.shared.queues.lock().map.len(),
        }
    }

    /// Stops taking notifications (later ones are dropped), gives the workers `grace` to deliver what
    /// is queued, then stops them. Returns when every worker has ended.
    pub async fn shutdown(&self, grace: Duration) {
        let s = &self.shared;
        s.queues.lock().closed = true;
        s.draining.cancel();
        s.tracker.close();
        if tokio::time::timeout(grace, s.tracker.wait()).await.is_err() {
            s.stop.cancel();
            s.tracker.wait().await;
        }
    }
}

impl Drop for NotificationEngine {
    fn drop(&mut self) {
        self.shared.queues.lock().closed = true;
        self.shared.stop.cancel();
    }
}

impl Notifier for NotificationEngine {
    fn send_now<'a>(
        &'a self,
        target: &'a NotifyTarget,
        pc: Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Rsc, Error>> {
        Box::pin(async move {
            let s = &self.shared;
            let body = serde_json::to_vec(&pc)
                .map(Bytes::from)
                .map_err(|e| Error::internal(format!("cannot encode the notification: {e}")))?;
            let started = Instant::now();
            let deadline = started.checked_add(timeout);
            let rqi = s.next_rqi();
            let answer = tokio::time::timeout(timeout, s.pass(&target.urls, &body, &rqi, deadline, None))
                .await
                .unwrap_or_else(|_| Answer::Unreachable(format!("no answer within {timeout:?}")));
            s.counters.count(if answer.is_success() { Fate::Delivered } else { Fate::Failed }, started.elapsed());
            answer.into_rsc()
        })
    }

    fn enqueue(&self, target: NotifyTarget, pc: Value) {
        let s = &self.shared;
        let body = match serde_json::to_vec(&pc) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(target = %redact(&target.key), error = %e, "cannot encode a notification");
                s.counters.count(Fate::Failed, Duration::ZERO);
                return;
            }
        };
        if target.urls.is_empty() {
            tracing::debug!(target = %redact(&target.key), "notification dropped: the target has no URL");
            s.counters.count(Fate::Dropped, Duration::ZERO);
            return;
        }
        if !s.counters.hold(body.len(), s.cfg.max_queued_bytes) {
            tracing::debug!(target = %redact(&target.key), "notification dropped: too many bytes queued");
            s.counters.count(Fate::Dropped, Duration::ZERO);
            return;
        }
        let job = Job { urls: target.urls, body, rqi: s.next_rqi(), queued_at: Instant::now() };
        s.submit(target.key, job);
    }
}

/// One notification on its way.
struct Job {
    urls: Vec<String>,
    body: Bytes,
    /// The request ID, the same on every try.
    rqi: String,
    queued_at: Instant,
}

/// How a notification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Delivered,
    Failed,
    Dropped,
}

impl Fate {
    fn label(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::Failed => "failed",
            Fate::Dropped => "dropped",
        }
    }
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicUsize,
    held_bytes: AtomicUsize,
}

impl Counters {
    /// Counts a notification's end; `took` is the time since it was queued (not recorded for drops).
    fn count(&self, fate: Fate, took: Duration) {
        let n = match fate {
            Fate::Delivered => &self.delivered,
            Fate::Failed => &self.failed,
            Fate::Dropped => &self.dropped,
        };
        n.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(M_TOTAL, "result" => fate.label()).increment(1);
        if fate != Fate::Dropped {
            metrics::histogram!(M_LATENCY, "result" => fate.label()).record(took.as_secs_f64());
        }
    }

    /// Reserves `n` bytes of the budget `max`; false if they do not fit.
    fn hold(&self, n: usize, max: usize) -> bool {
        self.held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| held.checked_add(n).filter(|t| *t <= max))
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.held_bytes.fetch_sub(n, Ordering::Relaxed);
    }

    fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(M_QUEUE_DEPTH).increment(1.0);
    }

    fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(M_QUEUE_DEPTH).decrement(1.0);
    }
}

/// What a target's worker knows of it (see "A dead target cannot starve live ones").
struct Health {
    /// URLs that answered their last request, at most [`MAX_PROVEN_URLS`].
    proven: Vec<String>,
    /// The circuit is open until then.
    open_until: Option<Instant>,
    /// The cooldown of the next opening.
    cooldown: Duration,
    /// Counted in the open-circuits gauge.
    counted: bool,
}

impl Health {
    fn new(cooldown: Duration) -> Self {
        Self { proven: Vec::new(), open_until: None, cooldown, counted: false }
    }

    fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|t| now < t)
    }

    fn is_proven(&self, url: &str) -> bool {
        self.proven.iter().any(|u| u == url)
    }

    /// Records whether `url` answered its last request.
    fn answered(&mut self, url: &str, answered: bool) {
        let known = self.proven.iter().position(|u| u == url);
        match (answered, known) {
            (true, None) => {
                if self.proven.len() == MAX_PROVEN_URLS {
                    self.proven.remove(0);
                }
                self.proven.push(url.to_owned());
            }
            (false, Some(i)) => {
                self.proven.remove(i);
            }
            _ => {}
        }
    }
}

/// A target's queue, as the enqueuing side sees it.
struct QueueHandle {
    /// Tells this queue from a later one of the same target.
    id: u64,
    tx: mpsc::Sender<Job>,
    /// The queue has overflowed before (logged once per queue).
    overflowed: bool,
}

#[derive(Default)]
struct Queues {
    map: HashMap<String, QueueHandle>,
    next_id: u64,
    /// No more notifications are taken.
    closed: bool,
}

struct Shared {
    cfg: NotifyConfig,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    origin: HeaderValue,
    rvi: HeaderValue,
    queues: Mutex<Queues>,
    /// Permits for requests to proven URLs, and to the others (see the module documentation).
    proven_permits: Semaphore,
    unproven_permits: Semaphore,
    counters: Counters,
    rqi_prefix: String,
    rqi_seq: AtomicU64,
    /// Workers finish their queue and end.
    draining: CancellationToken,
    /// Workers end now.
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    fn next_rqi(&self) -> String {
        format!("{}{}", self.rqi_prefix, self.rqi_seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Puts `job` on `key`'s queue, starting the queue and its worker if needed. Never waits.
    fn submit(self: &Arc<Self>, key: String, job: Job) {
        let mut q = self.queues.lock();
        if q.closed {
            drop(q);
            return self.discard(job);
        }
        let job = match q.map.get_mut(&key) {
            Some(h) => match h.tx.try_send(job) {
                Ok(()) => return self.counters.queued(),
                Err(TrySendError::Full(job)) => {
                    if !h.overflowed {
                        h.overflowed = true;
                        tracing::warn!(target = %redact(&key), depth = self.cfg.queue_depth,
                            "notification queue full; dropping notifications for this target");
                    }
                    drop(q);
                    return self.discard(job);
                }
                // The worker ended without removing its queue (it cannot, but a new one is the cure).
                Err(TrySendError::Closed(job)) => {
                    q.map.remove(&key);
                    job
                }
            },
            None => job,
        };
        if q.map.len() >= self.cfg.max_targets {
            drop(q);
            tracing::debug!(target = %redact(&key), "notification dropped: too many targets");
            return self.discard(job);
        }
        let (tx, rx) = mpsc::channel(self.cfg.queue_depth);
        if let Err(e) = tx.try_send(job) {
            drop(q);
            return self.discard(e.into_inner());
        }
        self.counters.queued();
        let id = q.next_id;
        q.next_id += 1;
        q.map.insert(key.clone(), QueueHandle { id, tx, overflowed: false });
        metrics::gauge!(M_TARGETS).set(q.map.len() as f64);
        self.tracker.spawn_on(Arc::clone(self).work(key, id, rx), &self.runtime);
    }

    /// Counts `job` as dropped and lets go of its bytes.
    fn discard(&self, job: Job) {
        self.finish(job, Fate::Dropped);
    }

    fn finish(&self, job: Job, fate: Fate) {
        self.counters.release(job.body.len());
        self.counters.count(fate, job.queued_at.elapsed());
    }

    /// A target's worker: delivers its queue in order, ends when idle, draining or stopped.
    async fn work(self: Arc<Self>, key: String, id: u64, mut rx: mpsc::Receiver<Job>) {
        let mut health = Health::new(self.cfg.circuit_cooldown);
        loop {
            let job = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                job = rx.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
                // Only reached with an empty queue: `recv` is polled first.
                () = self.draining.cancelled() => break,
                () = tokio::time::sleep(self.cfg.idle_timeout) => {
                    // A target with an open circuit is remembered until its cooldown has passed.
                    if !health.is_open(Instant::now()) && self.retire(&key, id, &rx) {
                        self.close_circuit(&mut health);
                        return;
                    }
                    continue;
                }
            };
            self.counters.dequeued();
            if health.is_open(Instant::now()) {
                tracing::debug!(target = %redact(&key), rqi = job.rqi, "notification failed at once: the target's circuit is open");
                self.finish(job, Fate::Failed);
                continue;
            }
            let fate = tokio::select! {
                biased;
                () = self.stop.cancelled() => None,
                fate = self.deliver(&job, &key, &mut health) => Some(fate),
            };
            match fate {
                Some(fate) => self.finish(job, fate),
                None => {
                    self.discard(job);
                    break;
                }
            }
        }
        self.close_circuit(&mut health);
        self.remove_queue(&key, id);
        rx.close();
        while let Ok(job) = rx.try_recv() {
            self.counters.dequeued();
            self.discard(job);
        }
    }

    /// Removes an idle worker's queue if nothing arrived in it meanwhile: under the lock, so that no
    /// notification can be put in a queue nobody reads.
    fn retire(&self, key: &str, id: u64, rx: &mpsc::Receiver<Job>) -> bool {
        let mut q = self.queues.lock();
        if !rx.is_empty() {
            return false;
        }
        if q.map.get(key).is_some_and(|h| h.id == id) {
            q.map.remove(key);
            metrics::gauge!(M_TARGETS).set(q.map.len() as f64);
        }
        true
    }

    fn remove_queue(&self, key: &str, id: u64) {
        let mut q = self.queues.lock();
        if q.map.get(key).is_some_and(|h| h.id == id) {
            q.map.remove(key);
            metrics::gauge!(M_TARGETS).set(q.map.len() as f64);
        }
    }

    /// Opens the target's circuit for its cooldown, and doubles the next one.
    fn open_circuit(&self, health: &mut Health, key: &str) {
        let cooldown = health.cooldown;
        health.open_until = Instant::now().checked_add(cooldown);
        health.cooldown = cooldown.saturating_mul(2).min(self.cfg.max_circuit_cooldown);
        if !health.counted {
            health.counted = true;
            metrics::gauge!(M_OPEN).increment(1.0);
        }
        tracing::info!(target = %redact(key), cooldown = ?cooldown,
            "notification target unreachable; its notifications fail at once until the cooldown has passed");
    }

    /// Closes the target's circuit: it accepted or refused a notification, or its worker ends.
    fn close_circuit(&self, health: &mut Health) {
        health.open_until = None;
        health.cooldown = self.cfg.circuit_cooldown;
        if health.counted {
            health.counted = false;
            metrics::gauge!(M_OPEN).decrement(1.0);
        }
    }

    /// Delivers one queued notification: passes over its URLs until one accepts it, it is refused, or
    /// the retries are used up (which opens the target's circuit).
    async fn deliver(&self, job: &Job, key: &str, health: &mut Health) -> Fate {
        let mut retry = 0;
        loop {
            let answer = self.pass(&job.urls, &job.body, &job.rqi, None, Some(health)).await;
            if answer.is_success() {
                self.close_circuit(health);
                return Fate::Delivered;
            }
            if !answer.is_transient() {
                if matches!(answer, Answer::Http { .. }) {
                    self.close_circuit(health);
                }
                tracing::debug!(target = %redact(key), rqi = job.rqi, answer = %answer, "notification refused");
                return Fate::Failed;
            }
            if retry == self.cfg.retries {
                tracing::debug!(target = %redact(key), rqi = job.rqi, answer = %answer, retries = retry,
                    "notification given up");
                self.open_circuit(health, key);
                return Fate::Failed;
            }
            retry += 1;
            tokio::time::sleep(self.backoff(retry)).await;
        }
    }

    /// The wait before retry number `retry` (from 1): exponential, capped, with jitter.
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        let full = self.cfg.backoff.saturating_mul(factor).min(self.cfg.max_backoff);
        let half = full / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).saturating_add(1);
        half + Duration::from_nanos(getrandom::u64().unwrap_or(0) % span)
    }

    /// One pass over `urls`, in order, until one answers other than transiently. Each request gets
    /// the request timeout, or what is left before `deadline` if that is sooner. With `health` (a
    /// queued notification), each request holds a permit of the pool its URL belongs to, for that
    /// request only, and its outcome updates what is proven.
    async fn pass(
        &self,
        urls: &[String],
        body: &Bytes,
        rqi: &str,
        deadline: Option<Instant>,
        mut health: Option<&mut Health>,
    ) -> Answer {
        let mut last = Answer::Unusable("no URL to send to".into());
        for raw in urls {
            let url = match parse_url(raw) {
                Ok(url) => url,
                Err(why) => {
                    if !last.is_transient() {
                        last = Answer::Unusable(why);
                    }
                    continue;
                }
            };
            let _permit = match health.as_deref() {
                Some(h) => {
                    let pool = if h.is_proven(raw) { &self.proven_permits } else { &self.unproven_permits };
                    match pool.acquire().await {
                        Ok(p) => Some(p),
                        Err(_) => return Answer::Unreachable("the engine has stopped".into()),
                    }
                }
                None => None,
            };
            let timeout = match deadline {
                Some(d) => self.cfg.request_timeout.min(d.saturating_duration_since(Instant::now())),
                None => self.cfg.request_timeout,
            };
            if timeout.is_zero() {
                return Answer::Unreachable("no answer in time".into());
            }
            let answer = self.post(url, body, rqi, timeout).await;
            if let Some(h) = health.as_deref_mut() {
                h.answered(raw, matches!(answer, Answer::Http { .. }));
            }
            if answer.is_success() || !answer.is_transient() {
                return answer;
            }
            // A transient failure is the most telling (worth a retry), over an unusable URL.
            last = answer;
        }
        last
    }

    async fn post(&self, url: Url, body: &Bytes, rqi: &str, timeout: Duration) -> Answer {
        let rqi = match HeaderValue::from_str(rqi) {
            Ok(v) => v,
            Err(_) => return Answer::Unusable("invalid request identifier".into()),
        };
        let sent = self
            .client
            .post(url)
            .timeout(timeout)
            .header(X_M2M_ORIGIN, self.origin.clone())
            .header(X_M2M_RI, rqi)
            .header(X_M2M_RVI, self.rvi.clone())
            .header(CONTENT_TYPE, JSON)
            .header(ACCEPT, JSON)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let rsc =
                    resp.headers().get(X_M2M_RSC).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse().ok());
                drain(resp).await;
                Answer::Http { status, rsc }
            }
            Err(e) if e.is_builder() => Answer::Unusable(describe(e)),
            Err(e) => Answer::Unreachable(describe(e)),
        }
    }
}

/// What a target said, or why it said nothing.
#[derive(Debug)]
enum Answer {
    /// An HTTP answer with its status and `X-M2M-RSC`, if that was a number.
    Http { status: StatusCode, rsc: Option<u16> },
    /// No answer: connection failure, timeout, broken connection.
    Unreachable(String),
    /// A URL that cannot be sent to.
    Unusable(String),
}

impl Answer {
    /// A `2xx` with a `2xxx` response status code, or without one.
    fn is_success(&self) -> bool {
        match self {
            Answer::Http { status, rsc } => status.is_success() && rsc.is_none_or(|c| (2000..3000).contains(&c)),
            _ => false,
        }
    }

    /// Worth trying again: no answer, or an answer that says "later".
    fn is_transient(&self) -> bool {
        match self {
            Answer::Http { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Answer::Unreachable(_) => true,
            Answer::Unusable(_) => false,
        }
    }

    /// The receiver's response status code: `X-M2M-RSC`, else one for the HTTP status.
    fn into_rsc(self) -> Result<Rsc, Error> {
        match self {
            Answer::Http { status, rsc } => {
                rsc.and_then(Rsc::from_u16).or_else(|| rsc_for_status(status)).ok_or_else(|| {
                    Error::new(
                        Rsc::TargetNotReachable,
                        format!("the receiver answered HTTP {status} without a response status code"),
                    )
                })
            }
            Answer::Unreachable(why) => Err(Error::new(Rsc::TargetNotReachable, why)),
            Answer::Unusable(why) => Err(Error::new(Rsc::TargetNotReachable, why)),
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Http { status, rsc: Some(rsc) } => write!(f, "HTTP {status}, RSC {rsc}"),
            Answer::Http { status, rsc: None } => write!(f, "HTTP {status}"),
            Answer::Unreachable(why) | Answer::Unusable(why) => f.write_str(why),
        }
    }
}

/// The response status code of an HTTP status, for receivers that do not send `X-M2M-RSC`: the
/// general code of TS-0009 Table 6.3.2-1 for that status. `None` for statuses that are no answer to
/// a NOTIFY (`1xx`, `3xx`).
fn rsc_for_status(status: StatusCode) -> Option<Rsc> {
    Some(match status.as_u16() {
        200..=299 => Rsc::Ok,
        401 | 403 => Rsc::OriginatorHasNoPrivilege,
        404 => Rsc::NotFound,
        405 => Rsc::OperationNotAllowed,
        406 => Rsc::NotAcceptable,
        408 => Rsc::RequestTimeout,
        409 => Rsc::Conflict,
        415 => Rsc::UnsupportedMediaType,
        400..=499 => Rsc::BadRequest,
        501 => Rsc::NotImplemented,
        504 => Rsc::RequestTimeout,
        500..=599 => Rsc::InternalServerError,
        _ => return None,
    })
}

/// An `http` or `https` URL with a host.
fn parse_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme {:?} (http and https are)", url.scheme()));
    }
    if url.host().is_none() {
        return Err("the URL has no host".into());
    }
    Ok(url)
}

/// Reads (and throws away) a bounded part of the answer's body, so that its connection can be reused.
async fn drain(mut resp: reqwest::Response) {
    let read = async {
        let mut left = MAX_ANSWER_BODY;
        while let Ok(Some(chunk)) = resp.chunk().await {
            match left.checked_sub(chunk.len()) {
                Some(l) => left = l,
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(ANSWER_BODY_TIMEOUT, read).await;
}

/// A reqwest error as a reason, without its URL (which may carry credentials) and with its causes.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A target key fit for logs: URLs lose their user information and query.
fn redact(key: &str) -> String {
    match Url::parse(key) {
        Ok(url) if url.host().is_some() => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
                None => format!("{}://{host}{}", url.scheme(), url.path()),
            }
        }
        _ => key.to_owned(),
    }
}

/// A prefix that makes this engine's request IDs unique among engines and restarts.
fn rqi_prefix() -> String {
    let mut bytes = [0u8; 6];
    let seed = match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{:x}", now.as_nanos())
        }
    };
    format!("ntf{seed}-")
}

fn describe_metrics() {
    metrics::describe_counter!(M_TOTAL, "Notifications by outcome: delivered, failed (refused or given up), dropped.");
    metrics::describe_gauge!(M_QUEUE_DEPTH, "Notifications waiting in the per-target queues.");
    metrics::describe_gauge!(M_TARGETS, "Notification targets with a live queue.");
    metrics::describe_gauge!(M_OPEN, "Notification targets whose circuit is open: their notifications fail at once.");
    // Present from the start, at zero, so that dashboards and alerts see them.
    for gauge in [M_QUEUE_DEPTH, M_TARGETS, M_OPEN] {
        metrics::gauge!(gauge).increment(0.0);
    }
    metrics::describe_histogram!(
        M_LATENCY,
        metrics::Unit::Seconds,
        "Time from queueing a notification to the end of its delivery."
    );
}
