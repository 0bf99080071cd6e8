//! The App-ID Registry service (DESIGN.md §6): it stores App-ID profiles, issues registered App-IDs,
//! answers signed lookups, publishes a long-poll change feed, and has an admin API with tokens.
//!
//! # Layout
//! - [`Registry`] (`service`): the registry itself: open it on a data directory
//!   ([`Registry::open`]), serve it ([`Registry::serve`]) or mount its [`Registry::router`].
//! - `http`: routes, handlers and extractors; every failure is a JSON [`ApiFailure`].
//! - `server`: the accept loop (connection cap, header timeout, graceful shutdown).
//! - [`store`]: the [`store::Store`] trait and the SQLite backend.
//! - `auth`: hashed bearer tokens; `cache`: signed answers kept in memory; [`telemetry`]: metrics.
//! - [`client`]: [`client::RegistryClient`], used by the CLI and the CSE.
//!
//! # Architecture invariants
//! - The registry signs the exact bytes that it sends; a record's stored JSON is the body of its GET.
//! - Every change commits in one transaction with its change-feed entry, then wakes the long-polls.
//! - Only `store` knows SQL.
#![forbid(unsafe_code)]

pub mod auth;
mod cache;
pub mod client;
pub mod config;
mod failure;
mod http;
mod server;
mod service;
pub mod store;
pub mod telemetry;

pub use cache::SignedBody;
pub use client::{ClientError, RegistryClient};
pub use config::{Limits, RegistryConfig};
pub use failure::ApiFailure;
pub use http::route_table;
pub use service::{IfMatch, OpenError, Registry};

/// The OpenAPI 3 document served at `GET /v1/openapi.json`.
pub fn openapi_json() -> &'static str {
    http::OPENAPI
}
