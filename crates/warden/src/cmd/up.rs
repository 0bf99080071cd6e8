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

use super::cse::{CseRun, TlsListener, serve_on};
use crate::common::{UsageError, bind, shutdown_signal};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the registry, the CSE and the demo PKI keep their data.
    #[arg(long, default_value = "./warden-data")]
    data: PathBuf,
    /// The CSE's HTTP address (port 0: any free port; the bound addresses are printed).
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

/// Where `warden up` writes the URLs it serves, for `warden device run` and scripts.
pub(crate) const UP_FILE: &str = "up.json";
/// Where a generated registry admin token is kept (mode 0600), so that the printed commands work.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin-token";

/// How the printed commands pass the admin token.
fn token_expr(args: &Args, data: &Path) -> String {
    if args.admin_token.is_some() && std::env::var("WARDEN_ADMIN_TOKEN").ok() == args.admin_token {
        return "\"$WARDEN_ADMIN_TOKEN\"".into();
    }
    if args.admin_token.is_some() {
        return "<your --admin-token>".into();
    }
    let file = data.join(ADMIN_TOKEN_FILE);
    if file.exists() {
        format!("\"$(cat {})\"", shell_path(&file))
    } else {
        "<the admin token printed at the first start>".into()
    }
}

/// A path as a shell word (single-quoted when it needs to be).
fn shell_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b)) {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", args.data.display())))?;
    let stop = CancellationToken::new();
    let (s, signal) = (stop.clone(), shutdown_signal());
    tokio::spawn(async move {
        signal.await;
        s.cancel();
    });

    // Every listener is bound first, so that port 0 works and the printed URLs are the real ones.
    let (reg_listener, reg_addr) = bind(args.registry_listen).await?;
    let (cse_listener, cse_addr) = bind(args.listen).await?;
    let (tls_listener, tls_addr) = bind(args.listen_tls).await?;
    let registry_url = format!("http://{reg_addr}");

    // The registry.
    let mut rcfg = RegistryConfig::new(&args.data);
    rcfg.admin_token = args.admin_token.clone();
    let registry =
        std::sync::Arc::new(Registry::open(rcfg).await.map_err(|e| anyhow::anyhow!("cannot open the registry: {e}"))?);
    if args.admin_token.is_none()
        && let Some(generated) = registry.take_generated_admin_token()
    {
        let file = args.data.join(ADMIN_TOKEN_FILE);
        write_secret(&file, &generated)?;
        println!("Registry admin token (generated; kept in {}): {generated}", file.display());
    }
    // The change feed's head before anyone can change the registry: the CSE follows from here, so
    // that nothing registered while it starts is missed.
    let feed_from = registry
        .changes(None, std::time::Duration::ZERO, 1)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the change feed: {e:?}"))?
        .last;
    let (r, s) = (registry.clone(), stop.clone());
    let registry_task = tokio::spawn(async move { r.serve(reg_listener, async move { s.cancelled().await }).await });

    // The demo PKI and the demo App-IDs, with a device certificate for each x509 one.
    let pki_dir = pki::PkiDir::new(args.data.join("pki"));
    let (root, _) = pki_dir.ensure_root("demo").map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
    let (server, _) =
        pki_dir.ensure_server(&["localhost", "127.0.0.1"]).map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
    let mut devices = Vec::new();
    for (app_id, class, method, storage, status) in DEMO {
        let draft: Draft = serde_json::from_value(demo_profile(app_id, class, method, storage, status, &root))?;
        match registry.create(draft).await {
            Ok(_) => tracing::info!(app_id, "demo App-ID registered"),
            Err(_) => tracing::debug!(app_id, "demo App-ID present"),
        }
        if *method == "x509" {
            let id = onem2m::AppId::parse(app_id).expect("valid");
            let name = pki::PkiDir::device_name(&id, None);
            let dir = pki_dir.devices_dir().join(&name);
            if !dir.join("cert.pem").exists() {
                let identity = root
                    .issue_device(&pki::DeviceSpec::new(id.clone()))
                    .map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
                pki_dir.write_device(&name, true, &identity).map_err(|e| anyhow::anyhow!("demo PKI: {e}"))?;
            }
            devices.push((app_id.to_string(), dir));
        }
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
    let quotas = policy.quotas.clone();
    let admission = AdmissionConfig { policy, registry: registry_client, keys, feed_from: Some(feed_from) };

    // The CSE.
    // Its points of access are the bound addresses (`serve_on`).
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
        listen: cse_addr,
        tls: Some(TlsListener {
            listen: tls_addr,
            cert_pem: format!("{}{}", server.leaf.cert_pem(), server.ca.cert_pem()).into_bytes(),
            key_pem: server.leaf.key_pem().as_bytes().to_vec(),
            client_auth: ClientAuth::Optional,
        }),
        limits: NetLimits::default(),
    };
    let urls = Urls {
        cse: format!("http://{cse_addr}"),
        cse_tls: format!("https://localhost:{}", tls_addr.port()),
        registry: registry_url.clone(),
    };
    let up = json!({"cse": urls.cse, "cseTls": urls.cse_tls, "registry": urls.registry});
    std::fs::write(args.data.join(UP_FILE), format!("{up:#}\n"))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.data.join(UP_FILE).display()))?;
    print_welcome(&args, &urls, &pki_dir, &devices, &quotas);
    let result = serve_on(run, (cse_listener, cse_addr), Some((tls_listener, tls_addr)), stop.clone()).await;
    stop.cancel();
    let _ = registry_task.await;
    result
}

struct Urls {
    cse: String,
    cse_tls: String,
    registry: String,
}

fn print_welcome(
    args: &Args,
    urls: &Urls,
    pki_dir: &pki::PkiDir,
    devices: &[(String, PathBuf)],
    quotas: &std::collections::BTreeMap<String, cse::admission::policy::Quota>,
) {
    use std::io::Write;
    let Urls { cse, cse_tls, registry: registry_url } = urls;
    let ca = shell_path(&pki_dir.server_ca_dir().join("cert.pem"));
    let data = shell_path(&args.data);
    let token = token_expr(args, &args.data);
    let hdr = r#"-H 'X-M2M-RVI: 4' -H 'Content-Type: application/json;ty=2'"#;
    let ae = |rn: &str, api: &str| {
        format!(r#"-d "{{\"m2m:ae\":{{\"rn\":\"{rn}\",\"api\":\"{api}\",\"rr\":false,\"srv\":[\"4\"]}}}}""#)
    };
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(String::new());
    line("Warden is up.".into());
    line(format!("  CSE (HTTP)   {cse}/cse-in"));
    line(format!("  CSE (HTTPS)  {cse_tls}/cse-in   (server CA: {ca})"));
    line(format!(
        "  Registry     {registry_url}/v1   (demo App-IDs: Rdemo.org.warden.{{thermostat,press,substation,retired}})"
    ));
    line(format!("  Metrics      {cse}/metrics and {registry_url}/metrics"));
    let q: Vec<String> = quotas
        .iter()
        .map(|(class, q)| {
            let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            format!("{class} mni {} mbs {}", n(q.mni), n(q.mbs))
        })
        .collect();
    line(format!("  Quotas       {}", if q.is_empty() { "none".to_owned() } else { q.join("; ") }));
    for (app_id, dir) in devices {
        line(format!("  Device cert  {app_id}: {}/cert.pem, key.pem", shell_path(dir)));
    }
    line(String::new());
    line("Try it (paste the lines in one shell; they can be pasted again):".into());
    line("  # 0. a fresh name for this try".into());
    line("  AE=Cthermo$(date +%s)p$$".into());
    line("  # 1. an admission: the thermostat (authentication method none) registers over plain HTTP".into());
    line(format!(
        "  curl -si -X POST {cse}/cse-in -H \"X-M2M-Origin: $AE\" -H \"X-M2M-RI: $AE-1\" {hdr} {}",
        ae("$AE", "Rdemo.org.warden.thermostat")
    ));
    line("  # 2. a rejection: the suspended App-ID gets 4126".into());
    line(format!(
        "  curl -si -X POST {cse}/cse-in -H 'X-M2M-Origin: C' -H \"X-M2M-RI: $AE-2\" {hdr} {}",
        ae("old$AE", "Rdemo.org.warden.retired")
    ));
    line("  # 3. a revocation takes effect within seconds: revoke, then the admitted thermostat is refused".into());
    line(format!(
        "  warden appid revoke Rdemo.org.warden.thermostat --reason demo --registry {registry_url} --token {token}"
    ));
    line(format!("  curl -si {cse}/cse-in/$AE -H \"X-M2M-Origin: $AE\" -H \"X-M2M-RI: $AE-3\" -H 'X-M2M-RVI: 4'"));
    line(
        "  # (and back: warden appid reactivate Rdemo.org.warden.thermostat --reason demo ... with the same flags)"
            .into(),
    );
    if let Some((app_id, dir)) = devices.first() {
        let dir = shell_path(dir);
        line(format!("  # the {app_id} device (x509) registers only over mutual TLS, with its certificate:"));
        line(format!(
            "  curl -si --cacert {ca} --cert {dir}/cert.pem --key {dir}/key.pem -X POST {cse_tls}/cse-in -H 'X-M2M-Origin: C' -H \"X-M2M-RI: $AE-4\" {hdr} {}",
            ae("press$AE", app_id)
        ));
    }
    if let Some((app_id, _)) = devices.first() {
        line("  # a simulated device: registers over mutual TLS with the demo certificate, creates its".into());
        line("  # containers and sends data (Ctrl-C stops it)".into());
        line(format!("  warden device run --cse {cse_tls} --app-id {app_id} --data {data}"));
    }
    line("  # and every decision is logged:".into());
    line(format!("  warden decisions --cse {cse} --token {token}"));
    line(String::new());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}
