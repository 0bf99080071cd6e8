//! Prometheus metrics through the `metrics` facade.
//!
//! The facade has one process-global recorder. [`prometheus`] installs ours the first time it is
//! called and hands out the same handle afterwards, so several servers in one process (`warden up`
//! runs the registry and the CSE; tests start many) share it and each renders it on its own
//! `/metrics` route. Other components of the process should record through the facade and render
//! with this handle too.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 50 µs to 10 s.
const BUCKETS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle; installs the recorder on first use.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics shows only what reaches ours");
            }
            let upkeep = handle.clone();
            // Histograms buffer samples until rendered; bound that even if nobody scrapes.
            let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

pub(crate) const HTTP_REQUESTS: &str = "registry_http_requests_total";
pub(crate) const HTTP_DURATION: &str = "registry_http_request_duration_seconds";
pub(crate) const LOOKUPS: &str = "registry_lookups_total";
pub(crate) const LOOKUP_CACHE: &str = "registry_lookup_cache_total";
pub(crate) const WAITERS: &str = "registry_change_feed_waiters";
pub(crate) const IMPORTED: &str = "registry_records_imported_total";
pub(crate) const CHANGES: &str = "registry_changes_total";

/// Describes the metrics once, for `# HELP` lines.
pub(crate) fn describe() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status");
        metrics::describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request latency by route");
        metrics::describe_counter!(LOOKUPS, "Lookups by result: registered, unregistered, denied");
        metrics::describe_counter!(LOOKUP_CACHE, "Signed answers served from the cache (hit) or built (miss)");
        metrics::describe_gauge!(WAITERS, "Change-feed long-polls waiting now");
        metrics::describe_counter!(IMPORTED, "Records registered through bulk import");
        metrics::describe_counter!(CHANGES, "Changes committed, by kind");
        // Present from the start, at zero, so that dashboards and alerts see them.
        metrics::gauge!(WAITERS).increment(0.0);
        for result in ["registered", "unregistered", "denied"] {
            metrics::counter!(LOOKUPS, "result" => result).increment(0);
        }
    });
}
