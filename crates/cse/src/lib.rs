//! The CSE: a oneM2M resource tree served over HTTP, with persistence, access control,
//! notifications and admission against the App-ID Registry.
//!
//! # Layout
//! - [`core`]: request processing on primitives (no HTTP, no SQL).
//! - [`store`]: the resource tree's storage (SQLite) and the admission decision log.
//! - [`admission`]: vetting AEs against the App-ID Registry and the operator's policy.
//! - [`http`]: the HTTP binding; [`net`] and [`tls`]: the accept loops and the security association.
//! - [`server`]: wiring of the above into a running service.
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod core;
pub mod http;
pub mod net;
pub mod notify;
pub mod resource;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
