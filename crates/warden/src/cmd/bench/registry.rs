//! The preload of `registry-lookup`: N realistic App-ID profiles (`Rbench.org.warden.a{i}`,
//! authentication `none`, about 1 KB each) imported through `POST /v1/import` as NDJSON, in
//! chunks with several requests in flight, unless the last one is already in the registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use indicatif::ProgressBar;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{Conn, Endpoint};
use super::stats::ImportStats;
use super::workload::{REGISTRY_APP_ID_PREFIX, build_request};

/// An import request may take long: it writes a whole chunk.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(300);
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The profile of preloaded App-ID `i`, written without building a JSON tree per record: the
/// JSON is rendered once with markers, split around them, and the parts are reused.
#[derive(Debug, Clone)]
pub(crate) struct ProfileTemplate {
    /// Text before the App-ID's number, between it and the name's number, and after.
    parts: [String; 3],
}

const MARK: &str = "@@N@@";

impl ProfileTemplate {
    pub(crate) fn new() -> Self {
        let json = serde_json::json!({
            "appId": format!("{REGISTRY_APP_ID_PREFIX}{MARK}"),
            "status": "active",
            "registrant": { "name": "Warden Bench Devices Ltd", "contact": "security@bench.warden.example" },
            "application": { "type": "environment-sensor", "class": "industrial", "name": format!("Bench Environment Sensor {MARK}") },
            "security": { "keyStorage": "secure-element", "tlsVersions": ["1.2", "1.3"], "firmwareSigned": true },
            "authentication": { "method": "none", "roots": [], "aeIdInCertificate": false },
            "communications": {
                "class": "periodic", "periodSeconds": 300, "maxRequestsPerMinute": 4, "maxPayloadBytes": 2048,
                "bindings": ["http", "mqtt"]
            },
            "dataModel": {
                "ontologyRef": "https://example.org/ontology#EnvironmentSensor",
                "containers": [
                    {
                        "name": "temperature", "contentInfo": "application/json:0",
                        "schema": {
                            "type": "object", "required": ["celsius"],
                            "properties": { "celsius": { "type": "number", "minimum": -60, "maximum": 120 } }
                        }
                    },
                    {
                        "name": "humidity", "contentInfo": "application/json:0",
                        "schema": {
                            "type": "object", "required": ["percent"],
                            "properties": { "percent": { "type": "number", "minimum": 0, "maximum": 100 } }
                        }
                    }
                ]
            },
            "dataPrivacy": {
                "category": "personal", "sharing": "restricted", "allowedRecipients": ["Cehr*", "Sanalytics*"],
                "retentionDays": 30, "dataMining": false, "resale": false
            }
        })
        .to_string();
        let mut it = json.split(MARK);
        let parts = [(); 3].map(|_| it.next().expect("the template has two markers").to_owned());
        Self { parts }
    }

    /// Appends the profile of App-ID number `i` (one line, no newline).
    pub(crate) fn write(&self, out: &mut Vec<u8>, i: u64) {
        use std::io::Write as _;
        let [a, b, c] = &self.parts;
        let _ = write!(out, "{a}{i}{b}{i}{c}");
    }

    /// The NDJSON body of records `range`.
    pub(crate) fn ndjson(&self, range: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::with_capacity((range.end - range.start) as usize * 1100);
        for i in range {
            self.write(&mut out, i);
            out.push(b'\n');
        }
        out
    }
}

fn registry_headers(ep: &Endpoint, token: &str) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(HOST, ep.host().clone());
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
    auth.set_sensitive(true);
    h.insert(AUTHORIZATION, auth);
    Ok(h)
}

/// Whether preloaded App-ID number `i` is in the registry.
async fn exists(conn: &mut Conn, ep: &Endpoint, headers: &HeaderMap, i: u64) -> anyhow::Result<bool> {
    let path = format!("/v1/app-ids/{REGISTRY_APP_ID_PREFIX}{i}");
    let req = build_request(Method::GET, ep.path(&path).parse()?, headers.clone(), Bytes::new());
    let mut body = Vec::new();
    let head = conn.send(req, &mut body, CHECK_TIMEOUT).await.map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    match head.status {
        200 => Ok(true),
        404 => Ok(false),
        status => anyhow::bail!(
            "checking the preload: GET {path} answered HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(1000)])
        ),
    }
}

/// Makes sure App-IDs `0..count` are in the registry, importing them when the last is missing.
/// A chunk whose first and last App-IDs are both there already (an earlier, smaller preload)
/// is skipped; the registry imports a chunk all or nothing.
pub(crate) async fn preload(
    ep: &Arc<Endpoint>,
    token: &str,
    count: u64,
    chunk: u64,
    parallel: usize,
    cancel: &CancellationToken,
    progress: &ProgressBar,
) -> anyhow::Result<ImportStats> {
    if count == 0 {
        return Ok(ImportStats::new(0, Duration::ZERO, true, false));
    }
    let mut conn = Conn::open(ep.clone()).await.map_err(|e| anyhow::anyhow!("registry {}: {}", ep.url, e.detail))?;
    if exists(&mut conn, ep, &registry_headers(ep, token)?, count - 1).await? {
        return Ok(ImportStats::new(0, Duration::ZERO, true, false));
    }
    drop(conn);

    progress.set_length(count);
    progress.set_position(0);
    progress.set_message("importing profiles");
    let chunk = chunk.max(1);
    let import = Arc::new(Import {
        endpoint: ep.clone(),
        headers: registry_headers(ep, token)?,
        template: ProfileTemplate::new(),
        count,
        chunk,
        chunks: count.div_ceil(chunk),
        next: AtomicU64::new(0),
        imported: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        stop: cancel.child_token(),
        progress: progress.clone(),
    });
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..parallel.clamp(1, import.chunks as usize) {
        let import = import.clone();
        tasks.spawn(async move {
            let result = import.work().await;
            if result.is_err() {
                import.stop.cancel();
            }
            result
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let (Err(e), None) = (result, &first_error) {
            first_error = Some(e);
        }
    }
    let done = import.imported.load(Ordering::Relaxed);
    if let Some(e) = first_error {
        return Err(e.context(format!("importing the preload ({done} of {count} records imported)")));
    }
    let mut stats = ImportStats::new(done, started.elapsed(), false, cancel.is_cancelled());
    stats.skipped = import.skipped.load(Ordering::Relaxed);
    Ok(stats)
}

/// One import, shared by the tasks that send its chunks.
struct Import {
    endpoint: Arc<Endpoint>,
    /// `Host`, `Accept` and the token.
    headers: HeaderMap,
    template: ProfileTemplate,
    count: u64,
    chunk: u64,
    chunks: u64,
    /// The next chunk to send.
    next: AtomicU64,
    imported: AtomicU64,
    skipped: AtomicU64,
    /// Ctrl-C, or another task's failure.
    stop: CancellationToken,
    progress: ProgressBar,
}

impl Import {
    /// Sends chunks over one connection until there are none left.
    async fn work(&self) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Imported {
            imported: u64,
        }
        let ep = &self.endpoint;
        let mut conn = Conn::open(ep.clone()).await.map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        let uri: hyper::Uri = ep.path("/v1/import").parse()?;
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        let mut answer = Vec::new();
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunks || self.stop.is_cancelled() {
                return Ok(());
            }
            let range = c * self.chunk..((c + 1) * self.chunk).min(self.count);
            let lines = range.end - range.start;
            let first = exists(&mut conn, ep, &self.headers, range.start).await?;
            let last = exists(&mut conn, ep, &self.headers, range.end - 1).await?;
            match (first, last) {
                (true, true) => {
                    self.skipped.fetch_add(lines, Ordering::Relaxed);
                    self.progress.inc(lines);
                    continue;
                }
                (false, false) => {}
                _ => anyhow::bail!(
                    "records {}..{} are partly in the registry already (an earlier preload with another \
                     --import-chunk?): use the same --import-chunk, or a fresh registry",
                    range.start,
                    range.end
                ),
            }
            let body = Bytes::from(self.template.ndjson(range.clone()));
            let req = build_request(Method::POST, uri.clone(), headers.clone(), body);
            let head = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Ok(()),
                head = conn.send(req, &mut answer, IMPORT_TIMEOUT) => head.map_err(|e| anyhow::anyhow!("{}", e.detail))?,
            };
            let text = || String::from_utf8_lossy(&answer[..answer.len().min(1000)]).into_owned();
            if !(200..300).contains(&head.status) {
                let hint = if head.status == 413 { " (try a smaller --import-chunk)" } else { "" };
                anyhow::bail!(
                    "POST /v1/import of records {}..{} answered HTTP {}{hint}: {}",
                    range.start,
                    range.end,
                    head.status,
                    text()
                );
            }
            let got: Imported = serde_json::from_slice(&answer).map_err(|_| {
                anyhow::anyhow!("POST /v1/import answered {} without {{\"imported\": n}}: {}", head.status, text())
            })?;
            if got.imported != lines {
                anyhow::bail!(
                    "POST /v1/import of records {}..{} imported {} of {lines}: {}",
                    range.start,
                    range.end,
                    got.imported,
                    text()
                );
            }
            let done = self.imported.fetch_add(lines, Ordering::Relaxed) + lines;
            self.progress.inc(lines);
            self.progress.set_message(format!("{done}/{} records imported", self.count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_valid_json_of_about_a_kilobyte() {
        let t = ProfileTemplate::new();
        let body = t.ndjson(999_990..1_000_000);
        let text = std::str::from_utf8(&body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10);
        assert!(text.ends_with('\n'));
        for (k, line) in lines.iter().enumerate() {
            let i = 999_990 + k as u64;
            assert!((900..=1300).contains(&line.len()), "{} bytes", line.len());
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let app = v["appId"].as_str().unwrap();
            assert_eq!(app, format!("Rbench.org.warden.a{i}"));
            assert!(onem2m::AppId::parse(app).unwrap().is_registered());
            assert_eq!(v["application"]["name"], format!("Bench Environment Sensor {i}"));
            assert_eq!(v["authentication"]["method"], "none");
            assert_eq!(v["status"], "active");
            assert!(v.get("version").is_none(), "the registry sets the version");
        }
    }

    #[test]
    fn profile_fields_are_the_designed_ones() {
        let mut out = Vec::new();
        ProfileTemplate::new().write(&mut out, 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "appId",
            "status",
            "registrant",
            "application",
            "security",
            "authentication",
            "communications",
            "dataModel",
            "dataPrivacy",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["application"]["class"], "industrial");
        assert_eq!(v["dataModel"]["containers"].as_array().unwrap().len(), 2);
    }
}
