//! What every subcommand shares: logging, the crypto provider, shutdown signals, common flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Exit code for bad command lines and configuration (sysexits `EX_USAGE`).
pub(crate) const EX_USAGE: u8 = 64;

/// A configuration or usage mistake: the process exits with [`EX_USAGE`].
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Installs aws-lc-rs as the process's rustls provider, once, before any TLS configuration is built.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Resolves when the process gets SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that comes right after a ready line is
/// printed must stop the process cleanly, not kill it.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt()).and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
    };
    async move {
        #[cfg(unix)]
        match handlers {
            Ok((mut int, mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}

/// The data directory when neither `--data` nor a config file names one (DESIGN.md §3).
pub(crate) const DEFAULT_DATA: &str = "./warden-data";

/// Flags every server takes (DESIGN.md §3). A flag that is given wins over the config file, even
/// when its value is the default; so none of them has a clap default.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on.
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// Directory for the embedded database [default: ./warden-data].
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// A TOML configuration file; flags override its values.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

impl ServerArgs {
    /// The data directory: `--data` when given, else the config file's, else [`DEFAULT_DATA`].
    pub(crate) fn data_dir(&self, from_file: Option<&Path>) -> PathBuf {
        self.data.clone().or_else(|| from_file.map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA))
    }
}

/// Flags every registry client takes (DESIGN.md §3).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RegistryClientArgs {
    /// The registry's base URL.
    #[arg(long = "registry", env = "WARDEN_REGISTRY_URL", default_value = "http://127.0.0.1:7070")]
    pub(crate) registry: String,
    /// A bearer token for the registry.
    #[arg(long = "token", env = "WARDEN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

/// A listener bound to `addr`, and the address it got (the port, when `addr` asks for port 0).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = l.local_addr().map_err(|e| anyhow::anyhow!("cannot read the address bound for {addr}: {e}"))?;
    Ok((l, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_names_the_address_it_cannot_listen_on() {
        let (_held, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_ne!(addr.port(), 0, "the bound port is reported");
        let e = bind(addr).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot listen on {addr}: ")), "{e}");
    }
}
