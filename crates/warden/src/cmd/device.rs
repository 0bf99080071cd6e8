//! `warden device run`: a real AE. It registers with the CSE (over mutual TLS when given a device
//! certificate), creates the containers of its App-ID's profile, and sends data at the rate of its
//! communications class until stopped.
//!
//! Against `warden up`, `--cse URL --app-id ID` is enough: what is not given is taken from its data
//! directory (`--data`, default `./warden-data`): the registry's URL (`up.json`), a read token for
//! it (`cse-registry-token`), the CA of the CSE's server certificate (`pki/server-ca/cert.pem`) and,
//! over https, the demo device certificate of the App-ID (`pki/devices/<App-ID>/`).

use std::path::PathBuf;
use std::time::Duration;

use appid::Record;
use appid::profile::CommClass;
use onem2m::AppId;
use serde_json::{Value, json};

use crate::common::{UsageError, shutdown_signal};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Register, create the profile's containers, and send data until stopped.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The CSE's base URL (http:// or https://).
    #[arg(long)]
    cse: String,
    /// The App-ID to register with.
    #[arg(long)]
    app_id: String,
    /// The originator: an AE-ID stem to register as, or C / S to be given one.
    #[arg(long, default_value = "C")]
    ae_id: String,
    /// The device certificate (PEM) for mutual TLS.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The device key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The CA of the CSE's server certificate (PEM), for https://.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// The profile as JSON, instead of asking the registry for it.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// The CSEBase's resource name.
    #[arg(long, default_value = "cse-in")]
    cse_name: String,
    /// Stop after this many data sends (default: until stopped).
    #[arg(long)]
    count: Option<u64>,
    /// The registry's base URL (default: the one `warden up` wrote in --data, else
    /// http://127.0.0.1:7070).
    #[arg(long, env = "WARDEN_REGISTRY_URL")]
    registry: Option<String>,
    /// A read token for the registry (default: the CSE's token that `warden up` keeps in --data).
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The data directory of a local `warden up`, for the defaults above.
    #[arg(long, default_value = "./warden-data")]
    data: PathBuf,
}

impl RunArgs {
    fn registry_url(&self) -> String {
        if let Some(r) = &self.registry {
            return r.clone();
        }
        std::fs::read_to_string(self.data.join(super::up::UP_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["registry"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "http://127.0.0.1:7070".into())
    }

    fn registry_token(&self) -> Option<String> {
        self.token.clone().or_else(|| {
            std::fs::read_to_string(self.data.join("cse-registry-token"))
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        })
    }

    fn https(&self) -> bool {
        self.cse.starts_with("https://")
    }

    /// The CA to trust over https: `--cacert`, or the demo server CA.
    fn cacert(&self) -> Option<PathBuf> {
        self.cacert.clone().or_else(|| {
            let p = self.data.join("pki").join("server-ca").join("cert.pem");
            (self.https() && p.exists()).then_some(p)
        })
    }

    /// The device certificate and key: `--cert`/`--key`, or over https the demo device's.
    fn identity(&self, app_id: &AppId) -> Option<(PathBuf, PathBuf)> {
        if let (Some(c), Some(k)) = (&self.cert, &self.key) {
            return Some((c.clone(), k.clone()));
        }
        let dir = pki::PkiDir::new(self.data.join("pki")).devices_dir().join(pki::PkiDir::device_name(app_id, None));
        (self.https() && dir.join("cert.pem").exists() && dir.join("key.pem").exists())
            .then(|| (dir.join("cert.pem"), dir.join("key.pem")))
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

async fn profile(args: &RunArgs, app_id: &AppId) -> anyhow::Result<Record> {
    if let Some(p) = &args.profile {
        let text = std::fs::read_to_string(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())))?;
        return serde_json::from_str(&text).map_err(|e| usage(format!("{}: {e}", p.display())));
    }
    let url = args.registry_url();
    let client = registry::RegistryClient::new(&url, args.registry_token()).map_err(|e| usage(e.to_string()))?;
    let answer = client
        .lookup(app_id, None)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the profile of {app_id} from {url}: {}", super::util::explain(e)))?;
    answer.value.record.ok_or_else(|| anyhow::anyhow!("the App-ID {app_id} is not registered"))
}

fn http_client(args: &RunArgs, app_id: &AppId) -> anyhow::Result<reqwest::Client> {
    let mut b =
        reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(5)).timeout(Duration::from_secs(30));
    if let Some(ca) = &args.cacert() {
        let pem = std::fs::read(ca).map_err(|e| usage(format!("cannot read {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| usage(format!("{}: {e}", ca.display())))?;
        b = b.tls_certs_only(certs);
    }
    if let Some((cert, key)) = &args.identity(app_id) {
        println!("presenting the device certificate {}", cert.display());
        let mut pem = std::fs::read(cert).map_err(|e| usage(format!("cannot read {}: {e}", cert.display())))?;
        pem.extend(std::fs::read(key).map_err(|e| usage(format!("cannot read {}: {e}", key.display())))?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| usage(format!("the device certificate: {e}")))?;
        b = b.identity(id);
    }
    Ok(b.build()?)
}

/// A oneM2M request; returns the RSC and the body.
async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    origin: &str,
    ty: Option<u16>,
    body: Option<&Value>,
    n: u64,
) -> anyhow::Result<(u16, Value)> {
    let mut rb = http
        .request(method, url)
        .header("X-M2M-Origin", origin)
        .header("X-M2M-RI", format!("device-{n}"))
        .header("X-M2M-RVI", "4")
        .header("Accept", "application/json");
    if let Some(b) = body {
        let ct = ty.map_or("application/json".to_owned(), |t| format!("application/json;ty={t}"));
        rb = rb.header("Content-Type", ct).body(b.to_string());
    }
    let resp = rb.send().await.map_err(|e| anyhow::anyhow!("cannot reach the CSE: {e}"))?;
    let rsc = resp.headers().get("x-m2m-rsc").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    let body = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
    Ok((rsc, body))
}

/// A sample value that a JSON Schema accepts, for the simple schemas of data models (objects of
/// numbers, integers, strings and booleans).
fn sample(schema: Option<&Value>, n: u64) -> Value {
    let Some(s) = schema else { return json!({"value": 20.0 + (n % 10) as f64 / 2.0}) };
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut out = serde_json::Map::new();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), sample(Some(v), n));
                }
            }
            Value::Object(out)
        }
        Some("number") => json!(20.0 + (n % 10) as f64 / 2.0),
        Some("integer") => json!(n % 100),
        Some("boolean") => json!(n.is_multiple_of(2)),
        Some("string") => json!(format!("reading {n}")),
        Some("array") => json!([]),
        _ => json!({"value": n}),
    }
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Run(args) = command;
    let app_id = AppId::parse(&args.app_id).map_err(|e| usage(format!("--app-id: {e}")))?;
    let record = profile(&args, &app_id).await?;
    let http = http_client(&args, &app_id)?;
    let base = args.cse.trim_end_matches('/');
    let cb = format!("{base}/{}", args.cse_name);

    // Register. Without `rn`, the CSE names the AE by its AE-ID, so that a device run again (or
    // several at once) never collides with an earlier one.
    let rn = String::new();
    let ae = json!({"m2m:ae": {"api": app_id.as_str(), "rr": false, "srv": ["3", "4"]}});
    let (rsc, body) = request(&http, reqwest::Method::POST, &cb, &args.ae_id, Some(2), Some(&ae), 0).await?;
    let (aei, rn) = match rsc {
        2001 => (
            body["m2m:ae"]["aei"].as_str().unwrap_or_default().to_owned(),
            body["m2m:ae"]["rn"].as_str().unwrap_or(&rn).to_owned(),
        ),
        4117 if args.ae_id.len() > 1 => {
            // Registered by an earlier run: find its resource name (CSE-relative unstructured ID).
            let (rsc, body) =
                request(&http, reqwest::Method::GET, &format!("{base}/{}", args.ae_id), &args.ae_id, None, None, 0)
                    .await?;
            let found = body["m2m:ae"]["rn"].as_str().filter(|_| rsc == 2000).map(str::to_owned);
            let Some(rn) = found else {
                anyhow::bail!("registered already as {}, but cannot read it: RSC {rsc}", args.ae_id)
            };
            println!("already registered as {}", args.ae_id);
            (args.ae_id.clone(), rn)
        }
        _ => anyhow::bail!("registration refused: RSC {rsc}: {}", body["m2m:dbg"].as_str().unwrap_or("")),
    };
    println!("registered as {aei} ({}/{rn})", args.cse_name);

    // The profile's containers.
    let containers: Vec<&appid::profile::Container> = record.data_model.containers.iter().collect();
    let names: Vec<String> =
        if containers.is_empty() { vec!["data".into()] } else { containers.iter().map(|c| c.name.clone()).collect() };
    for name in &names {
        let cnt = json!({"m2m:cnt": {"rn": name}});
        let (rsc, body) =
            request(&http, reqwest::Method::POST, &format!("{cb}/{rn}"), &aei, Some(3), Some(&cnt), 1).await?;
        match rsc {
            2001 => {
                println!("container {name} created (mni {}, mia {})", body["m2m:cnt"]["mni"], body["m2m:cnt"]["mia"])
            }
            4105 => println!("container {name} exists"),
            _ => anyhow::bail!("container {name} refused: RSC {rsc}: {}", body["m2m:dbg"].as_str().unwrap_or("")),
        }
    }

    // Send at the class's rate: periodic every periodSeconds, streaming every second, the others
    // every minute; never faster than maxRequestsPerMinute allows.
    let c = &record.communications;
    let mut period = match c.class {
        CommClass::Periodic => Duration::from_secs(u64::from(c.period_seconds.unwrap_or(60).max(1))),
        CommClass::Streaming => Duration::from_secs(1),
        CommClass::EventDriven | CommClass::OnDemand => Duration::from_secs(60),
    };
    if let Some(rpm) = c.max_requests_per_minute.filter(|r| *r > 0) {
        let floor = Duration::from_secs_f64(60.0 * names.len() as f64 / f64::from(rpm));
        period = period.max(floor);
    }
    let stop = shutdown_signal();
    println!("sending every {period:?} (Ctrl-C to stop)");
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(period);
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {}
        }
        n += 1;
        for name in &names {
            let model = containers.iter().find(|c| &c.name == name);
            let cnf = model.and_then(|m| m.content_info.clone()).unwrap_or_else(|| "application/json:0".into());
            let con = sample(model.and_then(|m| m.schema.as_ref()), n).to_string();
            let cin = json!({"m2m:cin": {"cnf": cnf, "con": con}});
            let url = format!("{cb}/{rn}/{name}");
            match request(&http, reqwest::Method::POST, &url, &aei, Some(4), Some(&cin), n + 1).await {
                Ok((2001, _)) => println!("{name}: sent {con}"),
                Ok((rsc, body)) => println!("{name}: refused, RSC {rsc}: {}", body["m2m:dbg"].as_str().unwrap_or("")),
                Err(e) => println!("{name}: {e}"),
            }
        }
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_match_simple_schemas() {
        let schema = json!({"type": "object", "required": ["celsius", "ok"],
                            "properties": {"celsius": {"type": "number"}, "ok": {"type": "boolean"}, "n": {"type": "integer"}}});
        let v = sample(Some(&schema), 3);
        assert!(v["celsius"].is_number() && v["ok"].is_boolean() && v["n"].is_u64());
        assert!(sample(None, 1)["value"].is_number());
    }
}
