//! `warden registry ...`: run the App-ID Registry, mint tokens, rotate signing keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use appid::Role;
use registry::{Registry, RegistryConfig};
use serde::Deserialize;

use super::util::{client, explain, print_json};
use crate::common::{RegistryClientArgs, ServerArgs, UsageError, shutdown_signal};

/// Where the registry listens unless told otherwise (DESIGN.md §3).
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7070);

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Run the registry. The admin token comes from WARDEN_ADMIN_TOKEN, or is generated at the
    /// first start and printed once.
    Serve(ServeArgs),
    /// Mint an API token (needs an admin token); it is printed once.
    Token(TokenArgs),
    /// The registry's signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The admin token (prefer the variable: flags show in `ps`).
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// What the token may do: `read` (lookups, records, change feed) or `admin` (everything).
    #[arg(long, default_value = "read", value_parser = ["read", "admin"])]
    role: String,
    /// Print `{"token", "role"}` as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryClientArgs,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// List the published keys (what GET /v1/keys answers).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryClientArgs,
    },
    /// Sign with a new key from now on; the current one stays published until retired.
    Rotate {
        #[command(flatten)]
        registry: RegistryClientArgs,
    },
    /// Withdraw a published key that no longer signs.
    Retire {
        /// The key id.
        kid: String,
        #[command(flatten)]
        registry: RegistryClientArgs,
    },
}

/// `--config FILE` for `warden registry serve`; command-line flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    body_bytes: Option<usize>,
    import_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_long_polls: Option<usize>,
    max_wait_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    body_read_timeout_seconds: Option<u64>,
    cache_bytes: Option<usize>,
    read_connections: Option<usize>,
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read the config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
}

/// The registry's configuration from the flags and the optional config file.
fn config(args: &ServeArgs) -> anyhow::Result<(SocketAddr, RegistryConfig)> {
    let file = match &args.server.config {
        Some(p) => read_config(p)?,
        None => FileConfig::default(),
    };
    let listen = args.server.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN);
    let mut cfg = RegistryConfig::new(args.server.data_dir(file.data.as_deref()));
    cfg.admin_token = args.admin_token.clone();
    let l = &mut cfg.limits;
    let f = file.limits;
    let positive = |name: &str, v: usize| -> anyhow::Result<usize> {
        if v == 0 { Err(UsageError(format!("limits.{name} must be at least 1")).into()) } else { Ok(v) }
    };
    if let Some(v) = f.body_bytes {
        l.body_bytes = positive("body_bytes", v)?;
    }
    if let Some(v) = f.import_bytes {
        l.import_bytes = positive("import_bytes", v)?;
    }
    if let Some(v) = f.max_connections {
        l.max_connections = positive("max_connections", v)?;
    }
    if let Some(v) = f.max_long_polls {
        l.max_long_polls = positive("max_long_polls", v)?;
    }
    if let Some(v) = f.max_wait_seconds {
        l.max_wait = Duration::from_secs(v);
    }
    if let Some(v) = f.header_read_timeout_seconds {
        l.header_read_timeout = Duration::from_secs(positive("header_read_timeout_seconds", v as usize)? as u64);
    }
    if let Some(v) = f.body_read_timeout_seconds {
        l.body_read_timeout = Duration::from_secs(positive("body_read_timeout_seconds", v as usize)? as u64);
    }
    if let Some(v) = f.cache_bytes {
        l.cache_bytes = v;
    }
    if let Some(v) = f.read_connections {
        l.read_connections = positive("read_connections", v)?;
    }
    Ok((listen, cfg))
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => {
            let role = Role::parse(&args.role).ok_or_else(|| UsageError("--role is read or admin".into()))?;
            let minted = client(&args.registry)?.mint_token(role).await.map_err(explain)?;
            if args.json {
                print_json(&minted)
            } else {
                println!("{}", minted.token);
                eprintln!("a {} token; it is shown only this once", minted.role.as_str());
                Ok(())
            }
        }
        Command::Keys { command } => match command {
            KeysCommand::List { json, registry } => {
                let keys = client(&registry)?.keys().await.map_err(explain)?;
                if json {
                    print_json(&keys)
                } else {
                    for k in keys.infos() {
                        println!("{}  {}  {}", k.kid, k.alg, k.public_key);
                    }
                    Ok(())
                }
            }
            KeysCommand::Rotate { registry } => {
                let r = client(&registry)?.rotate_key().await.map_err(explain)?;
                println!("now signing with {}; the previous key stays published until retired", r.kid);
                Ok(())
            }
            KeysCommand::Retire { kid, registry } => {
                let left = client(&registry)?.retire_key(&kid).await.map_err(explain)?;
                println!("retired {kid}; published now: {}", left.kids().collect::<Vec<_>>().join(", "));
                Ok(())
            }
        },
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (listen, cfg) = config(&args)?;
    let data = cfg.data_dir.clone();
    let registry =
        Registry::open(cfg).await.with_context(|| format!("cannot open the registry in {}", data.display()))?;
    if let Some(token) = registry.take_generated_admin_token() {
        // stdout only, once; never logged.
        println!("Generated the registry's admin token (shown only this once; keep it safe):");
        println!("{token}");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| UsageError(format!("cannot listen on {listen}: {e}")))?;
    registry.serve(listener, shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::DEFAULT_DATA;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn serve_args(argv: &[&str]) -> ServeArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("registry.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\ndata = \"/tmp/from-file\"\n[limits]\nmax_connections = 7\nmax_wait_seconds = 5\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let (listen, cfg) = config(&serve_args(&["x", "serve", "--config", f])).unwrap();
        assert_eq!(listen.to_string(), "127.0.0.1:9999");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/from-file"));
        assert_eq!(cfg.limits.max_connections, 7);
        assert_eq!(cfg.limits.max_wait, Duration::from_secs(5));
        let (listen, cfg) =
            config(&serve_args(&["x", "serve", "--config", f, "--listen", "127.0.0.1:1", "--data", "/d"])).unwrap();
        assert_eq!(listen.to_string(), "127.0.0.1:1");
        assert_eq!(cfg.data_dir, PathBuf::from("/d"));
        let (listen, cfg) = config(&serve_args(&["x", "serve"])).unwrap();
        assert_eq!(listen, DEFAULT_LISTEN);
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA));
    }

    #[test]
    fn bad_config_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nbogus = 1\n").unwrap();
        let e = config(&serve_args(&["x", "serve", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.downcast_ref::<UsageError>().is_some(), "{e}");
        std::fs::write(&file, "[limits]\nmax_connections = 0\n").unwrap();
        let e = config(&serve_args(&["x", "serve", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("max_connections"), "{e}");
        let e = config(&serve_args(&["x", "serve", "--config", "/no/such/file.toml"])).unwrap_err();
        assert!(e.downcast_ref::<UsageError>().is_some());
    }
}
