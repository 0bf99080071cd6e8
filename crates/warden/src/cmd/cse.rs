//! `warden cse serve`: the oneM2M CSE, over HTTP and optionally HTTPS with client certificates,
//! with admission against the App-ID Registry when a policy is given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use appid::KeySet;
use cse::admission::policy::{Mode, Policy};
use cse::config::CseConfig;
use cse::http::HttpConfig;
use cse::net::NetLimits;
use cse::notify::NotifyConfig;
use cse::server::{AdmissionConfig, Service, ServiceConfig};
use cse::store::sqlite::Durability;
use cse::tls::{ClientAuth, TlsConfig};
use onem2m::{CseId, CseType, ReleaseVersion, ResourceName, SpId};
use registry::RegistryClient;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::common::{ServerArgs, UsageError, shutdown_signal};

/// Where the CSE listens unless told otherwise (DESIGN.md §3).
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub(crate) const DEFAULT_LISTEN_TLS: &str = "127.0.0.1:8443";

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
    /// Whether HTTPS clients must present a certificate [default: optional].
    #[arg(long, value_parser = ["optional", "required"])]
    pub(crate) client_auth: Option<String>,
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

/// `--config FILE`: every setting has a default, and a flag that is given wins over the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    #[serde(default)]
    cse: FileCse,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    notify: FileNotify,
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
    /// The URL clients reach the HTTP listener at, advertised in the CSEBase's `poa`. Default: the
    /// bound address (a loopback address when bound to all interfaces).
    public_url: Option<String>,
    /// Largest request body in bytes.
    max_body_bytes: Option<usize>,
    /// How long a request body may take to arrive.
    body_timeout_seconds: Option<u64>,
    /// The longest a request is held for its operation execution time (`oet`).
    max_oet_wait_seconds: Option<u64>,
    /// The expiration of resources created without `et`.
    default_expiration_seconds: Option<u64>,
    /// The latest `et` a client may ask for, from now.
    max_expiration_seconds: Option<u64>,
    /// Most resources a discovery returns.
    max_discovery_results: Option<usize>,
    /// Most child resources a retrieve with rcn 4, 5, 6 or 8 returns.
    max_children: Option<usize>,
    /// Most resources one discovery (or retrieve of child resources) examines before it answers
    /// what it found so far as partial content.
    max_discovery_scan: Option<usize>,
    /// How long a subscription's verification request may take.
    verification_timeout_ms: Option<u64>,
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
    /// The URL clients reach the HTTPS listener at, advertised in the CSEBase's `poa`.
    public_url: Option<String>,
}

/// The notification engine's settings (`cse::notify::NotifyConfig`; the defaults are its own).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotify {
    queue_depth: Option<usize>,
    max_targets: Option<usize>,
    max_queued_bytes: Option<usize>,
    max_in_flight: Option<usize>,
    max_in_flight_unproven: Option<usize>,
    connect_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    circuit_cooldown_seconds: Option<u64>,
    max_circuit_cooldown_seconds: Option<u64>,
    /// `X-M2M-RVI` of the notifications: `2a`, `3`, `4` or `5`.
    release_version: Option<String>,
}

impl FileNotify {
    fn apply(&self, n: &mut NotifyConfig) -> anyhow::Result<()> {
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut n.queue_depth, self.queue_depth);
        set(&mut n.max_targets, self.max_targets);
        set(&mut n.max_queued_bytes, self.max_queued_bytes);
        set(&mut n.max_in_flight, self.max_in_flight);
        set(&mut n.max_in_flight_unproven, self.max_in_flight_unproven);
        let ms = |dst: &mut Duration, v: Option<u64>| {
            if let Some(v) = v {
                *dst = Duration::from_millis(v);
            }
        };
        ms(&mut n.connect_timeout, self.connect_timeout_ms);
        ms(&mut n.request_timeout, self.request_timeout_ms);
        ms(&mut n.backoff, self.backoff_ms);
        ms(&mut n.max_backoff, self.max_backoff_ms);
        let secs = |dst: &mut Duration, v: Option<u64>| {
            if let Some(v) = v {
                *dst = Duration::from_secs(v);
            }
        };
        secs(&mut n.idle_timeout, self.idle_timeout_seconds);
        secs(&mut n.circuit_cooldown, self.circuit_cooldown_seconds);
        secs(&mut n.max_circuit_cooldown, self.max_circuit_cooldown_seconds);
        if let Some(r) = self.retries {
            n.retries = r;
        }
        if let Some(v) = &self.release_version {
            n.release_version = ReleaseVersion::parse(v)
                .filter(|r| r.is_supported())
                .ok_or_else(|| usage(format!("notify.release_version must be 2a, 3, 4 or 5, not {v:?}")))?;
        }
        Ok(())
    }
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

/// A `public_url`: an absolute `scheme` URL whose host a client can reach (not 0.0.0.0 or `::`).
fn public_url(name: &str, url: &str, scheme: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| usage(format!("{name}: {url:?} is not a URL: {e}")))?;
    if parsed.scheme() != scheme {
        return Err(usage(format!("{name} must be a {scheme} URL, not {url:?}")));
    }
    let host =
        parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| usage(format!("{name} has no host: {url:?}")))?;
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
    if ip.is_ok_and(|ip| ip.is_unspecified()) {
        return Err(usage(format!("{name}: {url:?} is not an address clients can reach")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn config(args: &ServeArgs) -> anyhow::Result<CseRun> {
    let file: FileConfig = match &args.server.config {
        Some(p) => read_toml(p)?,
        None => FileConfig::default(),
    };
    let listen = args.server.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid"));
    let data = args.server.data_dir(file.data.as_deref());
    let c = &file.cse;
    let mut cse = CseConfig::default();
    if let Some(id) = &c.id {
        cse.cse_id = CseId::parse(id).map_err(|e| usage(format!("cse.id: {e}")))?;
    }
    if let Some(n) = &c.name {
        cse.cse_name = ResourceName::parse(n).map_err(|e| usage(format!("cse.name: {e}")))?;
    }
    if let Some(sp) = &c.sp_id {
        // The file may give the bare FQDN (`acme.example.com`); the SP-ID is its absolute form.
        let sp = if sp.starts_with("//") { sp.clone() } else { format!("//{sp}") };
        cse.sp_id = SpId::parse(&sp).map_err(|e| usage(format!("cse.sp_id: {e}")))?;
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
    let secs = |dst: &mut Duration, v: Option<u64>| {
        if let Some(v) = v {
            *dst = Duration::from_secs(v);
        }
    };
    secs(&mut cse.default_expiration, c.default_expiration_seconds);
    secs(&mut cse.max_expiration, c.max_expiration_seconds);
    if let Some(ms) = c.verification_timeout_ms {
        cse.verification_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = c.max_discovery_results {
        cse.max_discovery_results = n;
    }
    if let Some(n) = c.max_discovery_scan {
        cse.max_discovery_scan = n;
    }
    if let Some(n) = c.max_children {
        cse.max_children = n;
    }
    file.notify.apply(&mut cse.notify)?;
    cse.validate().map_err(|e| usage(format!("cse.{e}")))?;
    // The points of access: the public URLs when given; otherwise the bound addresses (in `serve`).
    let t = &file.tls;
    if let Some(u) = &c.public_url {
        cse.poa.push(public_url("cse.public_url", u, "http")?);
    }
    if let Some(u) = &t.public_url {
        cse.poa.push(public_url("tls.public_url", u, "https")?);
    }
    let mut http = match &args.admin_token {
        Some(t) => HttpConfig::default().with_admin_token(t),
        None => HttpConfig::default(),
    };
    if let Some(n) = c.max_body_bytes {
        http.max_body = n;
    }
    secs(&mut http.body_timeout, c.body_timeout_seconds);
    secs(&mut http.max_oet_wait, c.max_oet_wait_seconds);
    http.validate().map_err(|e| usage(format!("cse.{e}")))?;
    let mut limits = NetLimits::default();
    if let Some(n) = c.max_connections {
        limits.max_connections = n;
    }
    limits.validate().map_err(|e| usage(format!("cse.{e}")))?;
    let tls_listen = args.tls.listen_tls.or(t.listen);
    let tls = match tls_listen {
        None => None,
        Some(listen) => {
            let cert =
                args.tls.tls_cert.clone().or(t.cert.clone()).ok_or_else(|| usage("--listen-tls needs --tls-cert"))?;
            let key =
                args.tls.tls_key.clone().or(t.key.clone()).ok_or_else(|| usage("--listen-tls needs --tls-key"))?;
            let read = |p: &Path| std::fs::read(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())));
            let mode = args.tls.client_auth.as_deref().or(t.client_auth.as_deref()).unwrap_or("optional");
            Some(TlsListener { listen, cert_pem: read(&cert)?, key_pem: read(&key)?, client_auth: client_auth(mode)? })
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
            let (s, signal) = (stop.clone(), shutdown_signal());
            tokio::spawn(async move {
                signal.await;
                s.cancel();
            });
            serve(run, stop).await
        }
    }
}

/// The address a listener bound to `addr` is advertised at when no `public_url` is given: the
/// address itself, or the loopback address of its family when it is bound to all interfaces (a
/// client cannot connect to 0.0.0.0; set `public_url` for the address clients should use).
fn advertised(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Binds the listeners, starts the service and serves until `stop` is cancelled (see [`serve_on`]).
pub(crate) async fn serve(run: CseRun, stop: CancellationToken) -> anyhow::Result<()> {
    let (plain, plain_addr) = crate::common::bind(run.listen).await?;
    let tls_listener = match &run.tls {
        Some(t) => Some(crate::common::bind(t.listen).await?),
        None => None,
    };
    serve_on(run, (plain, plain_addr), tls_listener, stop).await
}

/// A bound listener and its address.
pub(crate) type Bound = (tokio::net::TcpListener, SocketAddr);

/// Starts the service and serves on listeners bound already (the addresses in `run` are not used
/// for binding), until `stop` is cancelled. Once both listeners serve, prints
/// `CSE ready on http://ADDR[ and https://ADDR]` (the bound addresses) on standard output.
pub(crate) async fn serve_on(
    mut run: CseRun,
    (plain, plain_addr): Bound,
    tls_listener: Option<Bound>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    // The metrics recorder first, so that nothing recorded from here on is lost.
    cse::telemetry::install();
    run.listen = plain_addr;
    if let (Some(t), Some((_, addr))) = (run.tls.as_mut(), &tls_listener) {
        t.listen = *addr;
    }
    let admission = run.service.admission.as_ref().map(|a| a.policy.admission.mode);
    let (cse_id, cse_name) = (run.service.cse.cse_id.clone(), run.service.cse.cse_name.clone());
    let poa = &mut run.service.cse.poa;
    if poa.is_empty() {
        poa.push(format!("http://{}", advertised(plain_addr)));
        if let Some((_, addr)) = &tls_listener {
            poa.push(format!("https://{}", advertised(*addr)));
        }
        if plain_addr.ip().is_unspecified() {
            tracing::warn!(poa = ?poa, "listening on all interfaces: set cse.public_url to the address clients should use");
        }
    }
    let service = Service::start(run.service).await?;
    let tls = match run.tls.take() {
        Some(t) => match TlsConfig::new(&t.cert_pem, &t.key_pem, service.trust.clone(), t.client_auth) {
            Ok(cfg) => Some((cfg, t.client_auth)),
            Err(e) => {
                service.shutdown().await;
                return Err(usage(format!("TLS: {e}")));
            }
        },
        None => None,
    };
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
    let mut ready = format!("CSE ready on http://{plain_addr}");
    if let (Some((cfg, auth)), Some((l, addr))) = (tls, tls_listener) {
        let s = stop.clone();
        tasks.push(tokio::spawn(cse::net::serve(l, Some(cfg), router, run.limits, async move { s.cancelled().await })));
        tracing::info!(cse = %cse_id, "HTTPS on https://{addr} (client certificates {auth:?})");
        ready.push_str(&format!(" and https://{addr}"));
    }
    match admission {
        None => tracing::info!("admission is off: a plain conformant CSE (give --policy to vet AEs)"),
        Some(m) => tracing::info!(mode = ?m, "admission is on"),
    }
    tracing::info!(cse = %cse_id, base = %cse_name, "{ready}");
    println!("{ready}");
    stop.cancelled().await;
    for t in tasks {
        let _ = t.await;
    }
    service.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        let argv = ["warden", "serve"].iter().chain(args).copied();
        match Cli::try_parse_from(argv).expect("valid flags").command {
            Command::Serve(a) => a,
        }
    }

    /// A directory with a config file (and dummy TLS files, which `config` only reads).
    fn dir_with(toml: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), "cert").unwrap();
        std::fs::write(dir.path().join("key.pem"), "key").unwrap();
        let toml = toml.replace("DIR", dir.path().to_str().unwrap());
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, toml).unwrap();
        (dir, path.to_str().unwrap().to_owned())
    }

    fn usage_error(args: &[&str]) -> String {
        match config(&parse(args)) {
            Ok(_) => panic!("{args:?} should be refused: {}", std::fs::read_to_string(args[1]).unwrap_or_default()),
            Err(e) => {
                assert!(e.downcast_ref::<UsageError>().is_some(), "{e:#} is a usage error");
                e.to_string()
            }
        }
    }

    #[test]
    fn defaults_match_the_common_test_setups() {
        let run = config(&parse(&[])).unwrap();
        let c = &run.service.cse;
        assert_eq!(c.cse_id.as_str(), "/id-in");
        assert_eq!(c.cse_name.as_str(), "cse-in");
        assert_eq!(c.cse_type, CseType::In);
        assert_eq!(c.admin, "CAdmin");
        assert!(!c.upper_tester);
        assert!(c.poa.is_empty(), "the bound addresses are advertised");
        assert_eq!(run.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(run.service.data_dir, PathBuf::from("./warden-data"));
        assert!(run.tls.is_none() && run.service.admission.is_none());
        assert_eq!(run.service.http.max_body, HttpConfig::default().max_body);
        assert_eq!(c.notify.max_in_flight, NotifyConfig::default().max_in_flight);
        assert_eq!(run.limits, NetLimits::default());
    }

    #[test]
    fn file_values_are_used() {
        let (_dir, path) = dir_with(
            r#"
            listen = "127.0.0.1:9000"
            data = "DIR/data"
            [cse]
            id = "/id-mn"
            name = "cse-mn"
            sp_id = "//example.net"
            type = "MN"
            admin = "CRoot"
            upper_tester = true
            public_url = "http://cse.example.net:9000/"
            max_body_bytes = 4096
            body_timeout_seconds = 5
            max_oet_wait_seconds = 7
            default_expiration_seconds = 3600
            max_expiration_seconds = 7200
            max_discovery_results = 50
            max_children = 20
            max_discovery_scan = 5000
            verification_timeout_ms = 1500
            durability = "full"
            max_connections = 10
            [tls]
            listen = "127.0.0.1:9443"
            cert = "DIR/cert.pem"
            key = "DIR/key.pem"
            client_auth = "required"
            public_url = "https://cse.example.net:9443"
            [notify]
            queue_depth = 10
            max_targets = 20
            max_queued_bytes = 30000
            max_in_flight = 40
            max_in_flight_unproven = 5
            connect_timeout_ms = 500
            request_timeout_ms = 2500
            retries = 1
            backoff_ms = 100
            max_backoff_ms = 800
            idle_timeout_seconds = 9
            circuit_cooldown_seconds = 11
            max_circuit_cooldown_seconds = 99
            release_version = "4"
            "#,
        );
        let run = config(&parse(&["--config", &path])).unwrap();
        let c = &run.service.cse;
        assert_eq!((c.cse_id.as_str(), c.cse_name.as_str(), c.cse_type), ("/id-mn", "cse-mn", CseType::Mn));
        assert_eq!(c.sp_id, SpId::parse("//example.net").unwrap());
        assert_eq!(c.admin, "CRoot");
        assert!(c.upper_tester);
        assert_eq!(c.poa, ["http://cse.example.net:9000", "https://cse.example.net:9443"]);
        assert_eq!(c.default_expiration, Duration::from_secs(3600));
        assert_eq!(c.max_expiration, Duration::from_secs(7200));
        assert_eq!((c.max_discovery_results, c.max_children, c.max_discovery_scan), (50, 20, 5000));
        assert_eq!(c.verification_timeout, Duration::from_millis(1500));
        let h = &run.service.http;
        assert_eq!(
            (h.max_body, h.body_timeout, h.max_oet_wait),
            (4096, Duration::from_secs(5), Duration::from_secs(7))
        );
        assert_eq!(run.service.durability, Durability::Full);
        assert_eq!(run.limits.max_connections, 10);
        assert_eq!(run.listen, "127.0.0.1:9000".parse().unwrap());
        assert!(run.service.data_dir.ends_with("data"));
        let tls = run.tls.as_ref().unwrap();
        assert_eq!((tls.listen, tls.client_auth), ("127.0.0.1:9443".parse().unwrap(), ClientAuth::Required));
        assert_eq!((tls.cert_pem.as_slice(), tls.key_pem.as_slice()), (&b"cert"[..], &b"key"[..]));
        let n = &c.notify;
        assert_eq!((n.queue_depth, n.max_targets, n.max_queued_bytes), (10, 20, 30000));
        assert_eq!((n.max_in_flight, n.max_in_flight_unproven, n.retries), (40, 5, 1));
        assert_eq!((n.connect_timeout, n.request_timeout), (Duration::from_millis(500), Duration::from_millis(2500)));
        assert_eq!((n.backoff, n.max_backoff), (Duration::from_millis(100), Duration::from_millis(800)));
        assert_eq!(n.idle_timeout, Duration::from_secs(9));
        assert_eq!((n.circuit_cooldown, n.max_circuit_cooldown), (Duration::from_secs(11), Duration::from_secs(99)));
        assert_eq!(n.release_version, ReleaseVersion::V4);
        assert_eq!(c.notify_config().originator.as_str(), "/id-mn");
    }

    #[test]
    fn flags_win_over_the_file_even_with_default_values() {
        let (dir, path) = dir_with(
            r#"
            listen = "127.0.0.1:9000"
            data = "DIR/data"
            [tls]
            listen = "127.0.0.1:9443"
            cert = "DIR/missing.pem"
            key = "DIR/missing.pem"
            client_auth = "required"
            "#,
        );
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let run = config(&parse(&[
            "--config",
            &path,
            "--listen",
            "127.0.0.1:8080",
            "--data",
            "./warden-data",
            "--listen-tls",
            "127.0.0.1:8443",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--client-auth",
            "optional",
            "--upper-tester",
        ]))
        .unwrap();
        assert_eq!(run.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(run.service.data_dir, PathBuf::from("./warden-data"));
        let tls = run.tls.as_ref().unwrap();
        assert_eq!((tls.listen, tls.client_auth), ("127.0.0.1:8443".parse().unwrap(), ClientAuth::Optional));
        assert_eq!(tls.cert_pem, b"cert");
        assert!(run.service.cse.upper_tester);
        // Without the flags, the file's values.
        let run = config(&parse(&[
            "--config",
            &path,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(run.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(run.tls.unwrap().client_auth, ClientAuth::Required);
    }

    #[test]
    fn bad_values_are_usage_errors_that_name_the_setting() {
        for (toml, named) in [
            ("bogus = 1", "bogus"),
            ("[cse]\nid = \"//id-in\"", "cse.id"),
            ("[cse]\ntype = \"XY\"", "cse.type"),
            ("[cse]\nmax_body_bytes = 0", "max_body_bytes"),
            ("[cse]\nbody_timeout_seconds = 0", "body_timeout"),
            ("[cse]\ndefault_expiration_seconds = 0", "default_expiration"),
            ("[cse]\ndefault_expiration_seconds = 100\nmax_expiration_seconds = 10", "max_expiration"),
            ("[cse]\nmax_children = 0", "max_children"),
            ("[cse]\nmax_discovery_scan = 0", "max_discovery_scan"),
            ("[cse]\nverification_timeout_ms = 0", "verification_timeout"),
            ("[cse]\nmax_connections = 0", "max_connections"),
            ("[cse]\npublic_url = \"http://0.0.0.0:8080\"", "cse.public_url"),
            ("[cse]\npublic_url = \"https://cse.example\"", "cse.public_url"),
            ("[tls]\npublic_url = \"https://[::]:8443\"", "tls.public_url"),
            (
                "[tls]\nclient_auth = \"maybe\"\nlisten = \"127.0.0.1:1\"\ncert = \"DIR/cert.pem\"\nkey = \"DIR/key.pem\"",
                "client_auth",
            ),
            ("[tls]\nlisten = \"127.0.0.1:1\"", "--tls-cert"),
            ("[notify]\nqueue_depth = 0", "queue_depth"),
            ("[notify]\nrequest_timeout_ms = 0", "request_timeout"),
            ("[notify]\ncircuit_cooldown_seconds = 20\nmax_circuit_cooldown_seconds = 10", "max_circuit_cooldown"),
            ("[notify]\nrelease_version = \"1\"", "release_version"),
            ("[notify]\nextra = true", "extra"),
        ] {
            let (_dir, path) = dir_with(toml);
            let msg = usage_error(&["--config", &path]);
            assert!(msg.contains(named), "{toml:?}: {msg}");
        }
        assert!(usage_error(&["--config", "/nonexistent/warden.toml"]).contains("cannot read"));
    }

    #[test]
    fn the_advertised_address_is_never_unspecified() {
        let a = |s: &str| advertised(s.parse().unwrap()).to_string();
        assert_eq!(a("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(a("[::]:8080"), "[::1]:8080");
        assert_eq!(a("192.0.2.1:8080"), "192.0.2.1:8080");
    }
}
