//! The CSE's integration tests: one binary, one module per area.

mod admission;
mod binding;
mod conformance;
mod lifecycle;
mod notifications;
mod scans;
mod store;
mod tls;
