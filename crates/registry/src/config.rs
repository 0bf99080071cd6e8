//! What a registry needs to start.

use std::path::PathBuf;
use std::time::Duration;

/// A registry's configuration.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Where the database lives (created if missing).
    pub data_dir: PathBuf,
    /// The admin token to accept (kept in memory only). When `None` and no admin token was ever
    /// generated in this data directory, one is generated and stored hashed; the caller shows it
    /// once (see [`crate::Registry::take_generated_admin_token`]).
    pub admin_token: Option<String>,
    pub limits: Limits,
}

impl RegistryConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), admin_token: None, limits: Limits::default() }
    }
}

/// Bounds on what clients can make the registry hold or wait for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, except imports (413 above).
    pub body_bytes: usize,
    /// Largest `POST /v1/import` body.
    pub import_bytes: usize,
    /// Time allowed to send a request's headers (then the connection is closed).
    pub header_read_timeout: Duration,
    /// Time allowed to send a request's body (408 after).
    pub body_read_timeout: Duration,
    /// Most open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// Most change-feed long-polls waiting at once (503 above).
    pub max_long_polls: usize,
    /// Longest `wait` of the change feed; larger values are cut to it.
    pub max_wait: Duration,
    /// Most changes in one page of the feed.
    pub changes_page: u32,
    /// Most records in one page of `GET /v1/app-ids` (and the default page size is 100).
    pub list_page: u32,
    /// Memory for cached signed answers.
    pub cache_bytes: usize,
    /// SQLite read connections.
    pub read_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1 << 20,
            import_bytes: 64 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_long_polls: 512,
            max_wait: Duration::from_secs(60),
            changes_page: 1000,
            list_page: 1000,
            cache_bytes: 64 << 20,
            read_connections: 4,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
