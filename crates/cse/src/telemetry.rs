//! Metrics of the CSE, exported in the Prometheus text format on `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use onem2m::{Operation, ResourceType, Rsc};

/// Latency buckets, in seconds: 50 µs to 5 s.
const BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder once (whoever asks first) and returns its handle.
/// `None` if another recorder was installed by someone else.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(|| PrometheusBuilder::new().set_buckets(BUCKETS).ok()?.install_recorder().ok()).as_ref()
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    prometheus().map(PrometheusHandle::render).unwrap_or_default()
}

fn op_name(op: Option<Operation>) -> &'static str {
    match op {
        Some(Operation::Create) => "create",
        Some(Operation::Retrieve) => "retrieve",
        Some(Operation::Update) => "update",
        Some(Operation::Delete) => "delete",
        Some(Operation::Notify) => "notify",
        None => "invalid",
    }
}

/// Counts a request by operation, resource type and response status code, and records its latency.
pub fn request(op: Option<Operation>, ty: Option<ResourceType>, rsc: Rsc, elapsed: Duration) {
    let op = op_name(op);
    let ty = ty.map_or("", ResourceType::short_name);
    metrics::counter!("cse_requests_total", "op" => op, "ty" => ty, "rsc" => rsc.code().to_string()).increment(1);
    metrics::histogram!("cse_request_duration_seconds", "op" => op).record(elapsed.as_secs_f64());
}
