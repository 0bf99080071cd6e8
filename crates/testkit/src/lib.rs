//! Test support shared by the crates' integration tests: a PKI made at run time, the registry and
//! the CSE started on 127.0.0.1:0 with temporary data, a notification sink, a fault-injecting proxy
//! for the registry, and a small oneM2M HTTP client. Helpers panic on failure, as test helpers may.
#![forbid(unsafe_code)]

pub mod cse;
pub mod m2m;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod sink;

use std::time::Duration;

/// Polls `f` every 50 ms until it is true, at most `timeout`; whether it became true. For state that
/// changes asynchronously (expiry, a change feed), where a test has nothing to wait on.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
