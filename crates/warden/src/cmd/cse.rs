//! `warden cse serve`: the oneM2M CSE, over HTTP and optionally HTTPS with client certificates,
//! with admission against the App-ID Registry when a policy is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use appid::KeySet;
use cse::admission::policy::{Mode, Policy};
use cse::config::CseConfig;
use cse::http::HttpConfig;
use cse::net::NetLimits;
use cse::server::{AdmissionConfig, Service, ServiceConfig};
use cse::store::sqlite::Durability;
use cse::tls::{ClientAuth, TlsConfig};
use onem2m::{CseId, CseType, ResourceName, SpId};
use registry::RegistryClient;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::common::{ServerArgs, UsageError, shutdown_signal};

/// Where the CSE listens unless told otherwise (DESIGN.md §3).
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub(crate) const DEFAULT_LISTEN_TLS: &str = "127.0.0.1:8443";
const DEFAULT_DATA: &str = "./warden-data";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Run the CSE. Without --policy it is a plain conformant CSE (admission off).
    Serve(ServeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TlsArgs {
    /// Also serve HTTPS here.
    #[arg(long)]
    pub(crate) listen_tls: Option<SocketAddr>,
    /// The server certificate chain (PEM) of the HTTPS listener.
    #[arg(long)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The server key (PEM) of the HTTPS listener.
    #[arg(long)]
    pub(crate) tls_key: Option<PathBuf>,
    /// Whether HTTPS clients must present a certificate.
    #[arg(long, default_value = "optional", value_parser = ["optional", "required"])]
    pub(crate) client_auth: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// The admission policy (TOML, DESIGN.md §7). Without it, admission is off.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The token of the admin API (/admin/decisions); prefer the variable.
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A read token for the registry, when the policy does not give one.
    #[arg(long = "token", env = "WARDEN_TOKEN", hide_env_values = true)]
    registry_token: Option<String>,
    /// Serve the TS-0019 Upper Tester interface (POST /__ut__).
    #[arg(long)]
    upper_tester: bool,
}

/// `--config FILE`; flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    #[serde(default)]
    cse: FileCse,
    #[serde(default)]
    tls: FileTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCse {
    /// The SP-relative CSE-ID, e.g. `/id-in`.
    id: Option<String>,
    /// The CSEBase's resource name, e.g. `cse-in`.
    name: Option<String>,
    /// The M2M-SP-ID, e.g. `acme.example.com`.
    sp_id: Option<String>,
    /// `IN`, `MN` or `ASN`.
    #[serde(rename = "type")]
    cse_type: Option<String>,
    /// The admin originator (full access).
    admin: Option<String>,
    upper_tester: Option<bool>,
    /// Largest request body in bytes.
    max_body_bytes: Option<usize>,
    /// `process` (survives a crash of the process) or `full` (also a power loss).
    durability: Option<Durability>,
    /// Most open connections per listener.
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_auth: Option<String>,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Reads a TOML file, mapping any problem to a usage error.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// The HTTPS listener of a CSE: where, with which identity, and how clients authenticate.
pub(crate) struct TlsListener {
    pub(crate) listen: SocketAddr,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) client_auth: ClientAuth,
}

/// Everything a CSE process needs to run.
pub(crate) struct CseRun {
    pub(crate) service: ServiceConfig,
    pub(crate) listen: SocketAddr,
    pub(crate) tls: Option<TlsListener>,
    pub(crate) limits: NetLimits,
}

/// Parses `optional` / `required`.
pub(crate) fn client_auth(s: &str) -> anyhow::Result<ClientAuth> {
    match s {
        "optional" => Ok(ClientAuth::Optional),
        "required" => Ok(ClientAuth::Required),
        other => Err(usage(format!("client_auth must be optional or required, not {other:?}"))),
    }
}

/// The registry's public keys from the policy: inline, or a file holding the `GET /v1/keys` body.
fn policy_keys(policy: &Policy, base: &Path) -> anyhow::Result<KeySet> {
    let a = &policy.admission;
    let mut keys: KeySet = match &a.keys_file {
        Some(f) => {
            let path = base.join(f);
            let text =
                std::fs::read_to_string(&path).map_err(|e| usage(format!("keys_file {}: {e}", path.display())))?;
            serde_json::from_str(&text).map_err(|e| usage(format!("keys_file {}: {e}", path.display())))?
        }
        None => KeySet::new(),
    };
    for k in &a.keys {
        let one: KeySet = serde_json::from_value(
            serde_json::json!({"keys": [{"kid": k.kid, "alg": "ed25519", "publicKey": k.public_key}]}),
        )
        .map_err(|e| usage(format!("admission.keys {}: {e}", k.kid)))?;
        for kid in one.kids() {
            if let Some(v) = one.get(kid) {
                keys.insert(kid, *v).map_err(|e| usage(format!("admission.keys {kid}: {e}")))?;
            }
        }
    }
    if keys.is_empty() {
        return Err(usage(
            "the policy gives no registry keys: set admission.keys_file to a file with the registry's \
             GET /v1/keys answer (every registry answer is checked with them)",
        ));
    }
    Ok(keys)
}

/// Admission from a policy file, or `None` when the policy turns it off.
fn admission_from(path: &Path, token: Option<String>) -> anyhow::Result<Option<AdmissionConfig>> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let policy = Policy::parse(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    if policy.admission.mode == Mode::Off {
        return Ok(None);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let keys = policy_keys(&policy, base)?;
    let url = policy
        .admission
        .registry
        .clone()
        .ok_or_else(|| usage("admission.registry (the registry's URL) is required"))?;
    let token = policy.admission.token.clone().or(token);
    let registry = RegistryClient::new(&url, token).map_err(|e| usage(format!("admission.registry: {e}")))?;
    Ok(Some(AdmissionConfig { policy, registry, keys, feed_from: None }))
}

fn config(args: &ServeArgs) -> anyhow::Result<CseRun> {
    let file: FileConfig = match &args.server.config {
        Some(p) => read_toml(p)?,
        None => FileConfig::default(),
    };
    let listen = args.server.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid"));
    let data = match (&file.data, args.server.data == Path::new(DEFAULT_DATA)) {
        (Some(d), true) => d.clone(),
        _ => args.server.data.clone(),
    };
    let c = &file.cse;
    let mut cse = CseConfig::default();
    if let Some(id) = &c.id {
        cse.cse_id = CseId::parse(id).map_err(|e| usage(format!("cse.id: {e}")))?;
    }
    if let Some(n) = &c.name {
        cse.cse_name = ResourceName::parse(n).map_err(|e| usage(format!("cse.name: {e}")))?;
    }
    if let Some(sp) = &c.sp_id {
        cse.sp_id = SpId::parse(sp).map_err(|e| usage(format!("cse.sp_id: {e}")))?;
    }
    if let Some(t) = &c.cse_type {
        cse.cse_type = match t.to_ascii_uppercase().as_str() {
            "IN" => CseType::In,
            "MN" => CseType::Mn,
            "ASN" => CseType::Asn,
            other => return Err(usage(format!("cse.type must be IN, MN or ASN, not {other}"))),
        };
    }
    if let Some(a) = &c.admin {
        onem2m::Originator::parse(a).map_err(|e| usage(format!("cse.admin: {e}")))?;
        cse.admin = a.clone();
    }
    cse.upper_tester = args.upper_tester || c.upper_tester.unwrap_or(false);
    cse.poa = vec![format!("http://{listen}")];
    let mut http = match &args.admin_token {
        Some(t) => HttpConfig::default().with_admin_token(t),
        None => HttpConfig::default(),
    };
    if let Some(n) = c.max_body_bytes {
        if n == 0 {
            return Err(usage("cse.max_body_bytes must be at least 1"));
        }
        http.max_body = n;
    }
    let mut limits = NetLimits::default();
    if let Some(n) = c.max_connections {
        limits.max_connections = n;
    }
    limits.validate().map_err(usage)?;
    let t = &file.tls;
    let tls_listen = args.tls.listen_tls.or(t.listen);
    let tls = match tls_listen {
        None => None,
        Some(listen) => {
            let cert =
                args.tls.tls_cert.clone().or(t.cert.clone()).ok_or_else(|| usage("--listen-tls needs --tls-cert"))?;
            let key =
                args.tls.tls_key.clone().or(t.key.clone()).ok_or_else(|| usage("--listen-tls needs --tls-key"))?;
            let read = |p: &Path| std::fs::read(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())));
            let mode = if args.tls.client_auth != "optional" {
                args.tls.client_auth.clone()
            } else {
                t.client_auth.clone().unwrap_or_else(|| "optional".into())
            };
            Some(TlsListener { listen, cert_pem: read(&cert)?, key_pem: read(&key)?, client_auth: client_auth(&mode)? })
        }
    };
    let admission = match &args.policy {
        Some(p) => admission_from(p, args.registry_token.clone())?,
        None => None,
    };
    let service = ServiceConfig { cse, http, data_dir: data, durability: c.durability.unwrap_or_default(), admission };
    Ok(CseRun { service, listen, tls, limits })
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let run = config(&args)?;
            let stop = CancellationToken::new();
            let s = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                s.cancel();
            });
            serve(run, stop).await
        }
    }
}

/// Binds the listeners, starts the service and serves until `stop` is cancelled.
pub(crate) async fn serve(run: CseRun, stop: CancellationToken) -> anyhow::Result<()> {
    let plain = tokio::net::TcpListener::bind(run.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", run.listen))?;
    let tls_listener = match &run.tls {
        Some(t) => Some(
            tokio::net::TcpListener::bind(t.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", t.listen))?,
        ),
        None => None,
    };
    serve_on(run, plain, tls_listener, stop).await
}

/// Starts the service and serves on listeners bound already (the addresses in `run` are ignored
/// for binding; the listeners' own addresses are logged), until `stop` is cancelled.
pub(crate) async fn serve_on(
    mut run: CseRun,
    plain: tokio::net::TcpListener,
    tls_listener: Option<tokio::net::TcpListener>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if let Ok(a) = plain.local_addr() {
        run.listen = a;
    }
    if let (Some(t), Some(l)) = (run.tls.as_mut(), &tls_listener)
        && let Ok(a) = l.local_addr()
    {
        t.listen = a;
    }
    let admission = run.service.admission.as_ref().map(|a| a.policy.admission.mode);
    let (cse_id, cse_name) = (run.service.cse.cse_id.clone(), run.service.cse.cse_name.clone());
    if let Some(t) = &run.tls {
        run.service.cse.poa.push(format!("https://{}", t.listen));
    }
    let service = Service::start(run.service).await?;
    let router = service.router();
    let mut tasks = Vec::new();
    let s = stop.clone();
    tasks.push(tokio::spawn(cse::net::serve(
        plain,
        None,
        router.clone(),
        run.limits,
        async move { s.cancelled().await },
    )));
    if let (Some(t), Some(l)) = (run.tls.take(), tls_listener) {
        let tls = TlsConfig::new(&t.cert_pem, &t.key_pem, service.trust.clone(), t.client_auth)
            .map_err(|e| usage(format!("TLS: {e}")))?;
        let s = stop.clone();
        tasks.push(tokio::spawn(cse::net::serve(l, Some(tls), router, run.limits, async move { s.cancelled().await })));
        tracing::info!(cse = %cse_id, "HTTPS on https://{} (client certificates {:?})", t.listen, t.client_auth);
    }
    match admission {
        None => tracing::info!("admission is off: a plain conformant CSE (give --policy to vet AEs)"),
        Some(m) => tracing::info!(mode = ?m, "admission is on"),
    }
    tracing::info!(cse = %cse_id, base = %cse_name, "CSE ready on http://{}", run.listen);
    stop.cancelled().await;
    for t in tasks {
        let _ = t.await;
    }
    service.shutdown().await;
    Ok(())
}
