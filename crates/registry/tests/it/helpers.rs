//! Starting registries on port 0 and talking to them.

use std::path::Path;
use std::time::Duration;

use registry::{Limits, Registry, RegistryConfig};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ADMIN: &str = "test-admin-token-0123456789";

/// A registry serving on 127.0.0.1:0 from a data directory.
pub(crate) struct Server {
    pub base: String,
    pub registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(crate) async fn start(dir: &Path) -> Server {
        Self::start_with(dir, Some(ADMIN), Limits::default()).await
    }

    pub(crate) async fn start_with(dir: &Path, admin: Option<&str>, limits: Limits) -> Server {
        let mut cfg = RegistryConfig::new(dir);
        cfg.admin_token = admin.map(str::to_owned);
        cfg.limits = limits;
        let registry = Registry::open(cfg).await.expect("the registry opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let r = registry.clone();
        let task = tokio::spawn(async move {
            r.serve(listener, async {
                let _ = rx.await;
            })
            .await
        });
        Server { base, registry, stop: Some(tx), task }
    }

    /// Stops the server and waits until it has.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("the server stops within the grace period")
            .unwrap()
            .unwrap();
    }

    pub(crate) fn client(&self, token: Option<&str>) -> registry::RegistryClient {
        registry::RegistryClient::new(&self.base, token.map(str::to_owned)).unwrap()
    }
}

/// An HTTP answer.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    /// Asserts an error answer with `status`, `error` code and `field`.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, code: &str, field: Option<&str>) {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(self.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(body["error"], json!(code), "{body}");
        assert_eq!(body["field"], field.map_or(Value::Null, |f| json!(f)), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

/// Sends a request with an optional bearer token, JSON body (or raw bytes) and extra headers.
pub(crate) async fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Body>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut rb = http().request(method, url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    match body {
        Some(Body::Json(v)) => rb = rb.header("content-type", "application/json").body(serde_json::to_vec(&v).unwrap()),
        Some(Body::Raw(b, ct)) => rb = rb.header("content-type", ct).body(b),
        None => {}
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    Answer { status: resp.status().as_u16(), headers: resp.headers().clone(), body: resp.bytes().await.unwrap() }
}

pub(crate) enum Body {
    Json(Value),
    Raw(Vec<u8>, &'static str),
}

/// A valid profile in the shape of the acceptance checks.
pub(crate) fn profile(app_id: &str) -> Value {
    json!({
        "appId": app_id, "status": "active",
        "registrant": {"name": "Bar Devices", "contact": "sec@bar.example"},
        "application": {"type": "thermostat", "class": "consumer", "name": "Bar Thermostat"},
        "security": {"keyStorage": "software", "tlsVersions": ["1.3"], "firmwareSigned": true},
        "authentication": {"method": "none", "roots": [], "aeIdInCertificate": false},
        "communications": {"class": "periodic", "periodSeconds": 60, "maxRequestsPerMinute": 10,
                           "maxPayloadBytes": 1024, "bindings": ["http"]},
        "dataModel": {"ontologyRef": "https://example.org/o#T", "containers": []},
        "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": ["Cehr*"],
                        "retentionDays": 30, "dataMining": false, "resale": false}
    })
}

/// Polls `cond` until it holds or `within` passes.
pub(crate) async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}
