//! Metrics of the CSE, exported in the Prometheus text format on `/metrics`.

use std::time::Duration;

use onem2m::{Operation, ResourceType, Rsc};

/// The metrics in the Prometheus text format. The process has one recorder, installed by
/// [`registry::telemetry::prometheus`], which the registry and the CSE share in one process.
pub fn render() -> String {
    registry::telemetry::prometheus().render()
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
