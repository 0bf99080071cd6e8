//! `warden up`: the App-ID Registry and an IN-CSE in one process, on embedded storage, seeded with
//! demo App-IDs and a demo PKI, admitting by the operator's policy (or a default that enforces).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use appid::{Draft, Role};
use cse::admission::policy::Policy;
use cse::config::CseConfig;
use cse::http::HttpConfig;
use cse::net::NetLimits;
use cse::server::{AdmissionConfig, ServiceConfig};
use cse::tls::ClientAuth;
use registry::{Registry, RegistryClient, RegistryConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::cse::{CseRun, TlsListener, serve};
use crate::common::{UsageError, shutdown_signal};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the registry, the CSE and the demo PKI keep their data.
    #[arg(long, default_value = "./warden-data")]
    data: PathBuf,
    /// The CSE's HTTP address.
    #[arg(long, default_value = super::cse::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The CSE's HTTPS address (client certificates optional; x509 App-IDs must use it).
    #[arg(long, default_value = super::cse::DEFAULT_LISTEN_TLS)]
    listen_tls: SocketAddr,
    /// The registry's address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    registry_listen: SocketAddr,
    /// An admission policy (TOML, DESIGN.md §7). Its `registry` and `keys` default to this process's
    /// registry. Without it, a default policy enforces: x509 App-IDs over mutual TLS, `none` over
    /// plain HTTP.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The registry's admin token (also the CSE's admin API token). Otherwise one is generated at the
    /// first start and printed once.
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

/// The demo App-IDs: one per class, and one suspended.
const DEMO: &[(&str, &str, &str, &str, &str)] = &[
    // app id, class, method, key storage, status
    ("Rdemo.org.warden.thermostat", "consumer", "none", "software", "active"),
    ("Rdemo.org.warden.press", "industrial", "x509", "secure-element", "active"),
    ("Rdemo.org.warden.substation", "critical-infrastructure", "x509", "tpm", "active"),
    ("Rdemo.org.warden.retired", "consumer", "none", "software", "suspended"),
];

fn demo_profile(
    app_id: &str,
    class: &str,
    method: &str,
    key_storage: &str,
    status: &str,
    root: &pki::Root,
) -> serde_json::Value {
    let roots = if method == "x509" {
        json!([{"subject": root.subject(), "sha256": root.fingerprint().to_hex(), "pem": root.cert_pem()}])
    } else {
        json!([])
    };
    let name = app_id.rsplit('.').next().unwrap_or(app_id);
    json!({
        "appId": app_id,
        "status": status,
        "registrant": {"name": "Warden demo vendor", "contact": "security@demo.example"},
        "application": {"type": name, "class": class, "name": format!("Demo {name}")},
        "security": {"keyStorage": key_storage, "tlsVersions": ["1.2", "1.3"], "firmwareSigned": true},
        "authentication": {"method": method, "roots": roots, "aeIdInCertificate": false},
        "communications": {"class": "periodic", "periodSeconds": 10, "maxRequestsPerMinute": 120,
                           "maxPayloadBytes": 4096, "bindings": ["http"]},
        "dataModel": {"ontologyRef": "https://example.org/ontology#Demo", "containers": [
            {"name": "telemetry", "contentInfo": "application/json:0",
             "schema": {"type": "object", "required": ["value"], "properties": {"value": {"type": "number"}}}}
        ]},
        "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": ["Cdashboard*"],
                        "retentionDays": 30, "dataMining": false, "resale": false},
    })
}

/// A read token for the CSE, minted once and kept (mode 0600) in the data directory.
async fn cse_token(registry: &Registry, data: &Path) -> anyhow::Result<String> {
    let path = data.join("cse-registry-token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let minted =
        registry.mint_token(Role::Read).await.map_err(|e| anyhow::anyhow!("cannot mint the CSE's token: {e:?}"))?;
    write_secret(&path, &minted.token)?;
    Ok(minted.token)
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    Ok(())
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", args.data.display())))?;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        s.cancel();
    });

    // The registry.
    let mut rcfg = RegistryConfig::new(&args.data);
    rcfg.admin_token = args.admin_token.clone();
    let registry =
        std::sync::Arc::new(Registry::open(rcfg).await.map_err(|e| anyhow::anyhow!("cannot open the registry: {e}"))?);
    let admin_token = match (&args.admin_token, registry.take_generated_admin_token()) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(generated)) => {
            println!("Registry admin token (shown once, keep it): {generated}");
            Some(generated)
        }
        (None, None) => None,
    };
    // The change feed's head before anyone can change the registry: the CSE follows from here, so
    // that nothing registered while it starts is missed.
    let feed_from = registry
        .changes(None, std::time::Duration::ZERO, 1)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the change feed: {e:?}"))?
        .last;
    let reg_listener = tokio::net::TcpListener::bind(args.registry_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.registry_listen))?;
    let registry_url = format!("http://{}", args.registry_listen);
    let (r, s) = (registry.clone(), stop.clone());
    let registry_task = tokio::spawn(async move { r.serve(reg_listener, async move { s.cancelled().await }).await });

    // The demo PKI and the demo App-IDs.
    let pki_dir = pki::PkiDir::new(args.data.join("pki"));
    let (root, _) = pki_dir.ensure_root("demo").map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
    let (server, _) =
        pki_dir.ensure_server(&["localhost", "127.0.0.1"]).map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
    for (app_id, class, method, storage, status) in DEMO {
        let draft: Draft = serde_json::from_value(demo_profile(app_id, class, method, storage, status, &root))?;
        match registry.create(draft).await {
            Ok(_) => tracing::info!(app_id, "demo App-ID registered"),
            Err(_) => tracing::debug!(app_id, "demo App-ID present"),
        }
    }
    let press_id = onem2m::AppId::parse(DEMO[1].0).expect("valid");
    let press = pki_dir.devices_dir().join(pki::PkiDir::device_name(&press_id, None));
    if !press.join("cert.pem").exists() {
        let identity =
            root.issue_device(&pki::DeviceSpec::new(press_id.clone())).map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
        pki_dir
            .write_device(&pki::PkiDir::device_name(&press_id, None), true, &identity)
            .map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
    }

    // Admission.
    let mut policy = match &args.policy {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| UsageError(format!("cannot read {}: {e}", p.display())))?;
            Policy::parse(&text).map_err(|e| UsageError(format!("{}: {e}", p.display())))?
        }
        None => Policy::default_enforcing(&registry_url),
    };
    if policy.admission.registry.is_none() {
        policy.admission.registry = Some(registry_url.clone());
    }
    let token = match policy.admission.token.clone() {
        Some(t) => t,
        None => cse_token(&registry, &args.data).await?,
    };
    let registry_client =
        RegistryClient::new(policy.admission.registry.as_deref().unwrap_or(&registry_url), Some(token))
            .map_err(|e| UsageError(format!("admission.registry: {e}")))?;
    let keys = registry.key_set();
    let admission = AdmissionConfig { policy, registry: registry_client, keys, feed_from: Some(feed_from) };

    // The CSE.
    // Its points of access are the bound addresses (`serve`).
    let cse = CseConfig::default();
    // The CSE accepts the registry's admin tokens, whether given or generated at an earlier start.
    let http = HttpConfig { admin_tokens: Some(registry.token_table()), ..HttpConfig::default() };
    let run = CseRun {
        service: ServiceConfig {
            cse,
            http,
            data_dir: args.data.clone(),
            durability: Default::default(),
            admission: Some(admission),
        },
        listen: args.listen,
        tls: Some(TlsListener {
            listen: args.listen_tls,
            cert_pem: format!("{}{}", server.leaf.cert_pem(), server.ca.cert_pem()).into_bytes(),
            key_pem: server.leaf.key_pem().as_bytes().to_vec(),
            client_auth: ClientAuth::Optional,
        }),
        limits: NetLimits::default(),
    };
    print_welcome(&args, &registry_url, &pki_dir, &press, admin_token.is_some());
    let result = serve(run, stop.clone()).await;
    stop.cancel();
    let _ = registry_task.await;
    result
}

fn print_welcome(args: &Args, registry_url: &str, pki_dir: &pki::PkiDir, press: &Path, has_token: bool) {
    let cse = format!("http://{}", args.listen);
    let cse_tls = format!("https://localhost:{}", args.listen_tls.port());
    let ca = pki_dir.server_ca_dir().join("cert.pem");
    let hdr = r#"-H 'X-M2M-RI: 1' -H 'X-M2M-RVI: 4' -H 'Content-Type: application/json;ty=2'"#;
    println!();
    println!("Warden is up.");
    println!("  CSE (HTTP)   {cse}/cse-in");
    println!("  CSE (HTTPS)  {cse_tls}/cse-in   (server CA: {})", ca.display());
    println!(
        "  Registry     {registry_url}/v1   (demo App-IDs: Rdemo.org.warden.{{thermostat,press,substation,retired}})"
    );
    println!("  Metrics      {cse}/metrics and {registry_url}/metrics");
    println!();
    println!("Try it:");
    println!("  # 1. an admission: the thermostat (authentication method none) registers over plain HTTP");
    println!(
        "  curl -si -X POST {cse}/cse-in -H 'X-M2M-Origin: Cthermo1' {hdr} -d '{{\"m2m:ae\":{{\"rn\":\"thermo1\",\"api\":\"Rdemo.org.warden.thermostat\",\"rr\":false,\"srv\":[\"4\"]}}}}'"
    );
    println!("  # 2. a rejection: the suspended App-ID gets 4126");
    println!(
        "  curl -si -X POST {cse}/cse-in -H 'X-M2M-Origin: C' {hdr} -d '{{\"m2m:ae\":{{\"rn\":\"old1\",\"api\":\"Rdemo.org.warden.retired\",\"rr\":false,\"srv\":[\"4\"]}}}}'"
    );
    println!("  # 3. a revocation takes effect within seconds: revoke, then the admitted thermostat is refused");
    let token = if has_token { "$WARDEN_ADMIN_TOKEN" } else { "<admin token>" };
    println!(
        "  warden appid revoke Rdemo.org.warden.thermostat --reason demo --registry {registry_url} --token {token}"
    );
    println!("  curl -si {cse}/cse-in/thermo1 -H 'X-M2M-Origin: Cthermo1' -H 'X-M2M-RI: 2' -H 'X-M2M-RVI: 4'");
    println!("  # the press (x509) registers only over mutual TLS, with its device certificate:");
    println!(
        "  curl -si --cacert {} --cert {}/cert.pem --key {}/key.pem -X POST {cse_tls}/cse-in -H 'X-M2M-Origin: C' {hdr} -d '{{\"m2m:ae\":{{\"rn\":\"press1\",\"api\":\"Rdemo.org.warden.press\",\"rr\":false,\"srv\":[\"4\"]}}}}'",
        ca.display(),
        press.display(),
        press.display()
    );
    println!("  # and every decision is logged:");
    println!("  warden decisions --cse {cse} --token {token}");
    println!();
}
