//! Metrics of the CSE, exported in the Prometheus text format on `/metrics`.
//!
//! The process has one recorder, installed by [`registry::telemetry::prometheus`] and shared by the
//! registry and the CSE in one process. [`install`] installs it and describes the CSE's metrics; the
//! notification engine and the HTTP router call it when they start, so nothing recorded by a CSE is
//! lost to a recorder that did not exist yet (before, the first scrape installed it, and what came
//! earlier was dropped; a gauge decremented then could go negative).
//!
//! # Request metrics
//! - `cse_requests_total{op, ty, rsc}`: counter. `op` is the operation the HTTP method (and the
//!   `ty=` of `Content-Type`) implies, also for requests that fail before they become primitives,
//!   and `other` for methods outside the binding. `ty` is the short name of the resource type: the
//!   created type for CREATE, the resolved target's type for the other operations (`cin` for `la`
//!   and `ol`, `grp` for `fopt`), and empty when no target was resolved (an unknown target, a
//!   request refused before resolution).
//! - `cse_request_duration_seconds{op, ty}`: histogram of the same requests' latency, from the
//!   request's head to the response.
//!
//! Both label sets are bounded: six operations, the resource types of the standard, and the
//! response status codes of its table.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use onem2m::{Operation, ResourceType, Rsc};

const REQUESTS: &str = "cse_requests_total";
const DURATION: &str = "cse_request_duration_seconds";

tokio::task_local! {
    /// The resource type of the request being processed on this task, as the core resolved it.
    static TARGET_TY: Cell<Option<ResourceType>>;
}

/// Installs the process's recorder (once) and describes the CSE's request metrics. Cheap to call
/// again.
pub fn install() {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    registry::telemetry::prometheus();
    DESCRIBED.get_or_init(|| {
        metrics::describe_counter!(REQUESTS, "oneM2M requests by operation, resource type and response status code");
        metrics::describe_histogram!(
            DURATION,
            metrics::Unit::Seconds,
            "oneM2M request latency by operation and resource type"
        );
    });
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    install();
    registry::telemetry::prometheus().render()
}

/// Runs `f` (the processing of one request) and returns its output with the resource type that
/// the core reported with [`target_type`] while it ran.
pub(crate) async fn with_target_type<F: Future>(f: F) -> (F::Output, Option<ResourceType>) {
    TARGET_TY
        .scope(Cell::new(None), async move {
            let out = f.await;
            (out, TARGET_TY.with(Cell::get))
        })
        .await
}

/// Reports the resource type of the request's target; called by the core when it has resolved
/// the target. The first report of a request wins (later resolutions are of other resources: a
/// subscription's `nu`, a group's members). Outside [`with_target_type`] it does nothing.
pub(crate) fn target_type(ty: ResourceType) {
    let _ = TARGET_TY.try_with(|c| {
        if c.get().is_none() {
            c.set(Some(ty));
        }
    });
}

fn op_name(op: Option<Operation>) -> &'static str {
    match op {
        Some(Operation::Create) => "create",
        Some(Operation::Retrieve) => "retrieve",
        Some(Operation::Update) => "update",
        Some(Operation::Delete) => "delete",
        Some(Operation::Notify) => "notify",
        None => "other",
    }
}

/// Counts a request by operation, resource type and response status code, and records its latency.
pub fn request(op: Option<Operation>, ty: Option<ResourceType>, rsc: Rsc, elapsed: Duration) {
    let op = op_name(op);
    let ty = ty.map_or("", ResourceType::short_name);
    metrics::counter!(REQUESTS, "op" => op, "ty" => ty, "rsc" => rsc.code().to_string()).increment(1);
    metrics::histogram!(DURATION, "op" => op, "ty" => ty).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reported_type_wins_and_nothing_leaks_outside() {
        let ((), ty) = with_target_type(async {
            target_type(ResourceType::Container);
            target_type(ResourceType::Subscription);
        })
        .await;
        assert_eq!(ty, Some(ResourceType::Container));
        let ((), ty) = with_target_type(async {}).await;
        assert_eq!(ty, None);
        target_type(ResourceType::Ae); // outside a scope: ignored, no panic
    }
}
