//! The unmeasured setup of the CSE scenarios: the bench's own AE (a unique name per run), its
//! container, and the instances or child containers that the measured requests need. It uses
//! the same client as the load; any unexpected answer stops the run with the request, the
//! status, the RSC and the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use super::client::{Conn, Endpoint};
use super::workload::{AeOrigin, M2m, X_M2M_RI, ae_body, build_request, cin_body, m2m_headers};

/// The kind of children `discovery` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ChildType {
    /// contentInstances (`ty=4`).
    Cin,
    /// containers (`ty=3`).
    Cnt,
}

impl ChildType {
    pub(crate) fn ty(self) -> u16 {
        match self {
            ChildType::Cin => 4,
            ChildType::Cnt => 3,
        }
    }
}

/// The AE the setup registered.
#[derive(Debug, Clone)]
pub(crate) struct BenchAe {
    /// Its structured path, e.g. `/cse-in/bench-1a2b3c4d`.
    pub(crate) path: String,
    /// The AE-ID the CSE assigned (or accepted): the originator of its requests.
    pub(crate) aei: String,
}

/// Sends setup requests with unique request IDs, one connection per parallel task.
#[derive(Clone)]
pub(crate) struct Setup {
    endpoint: Arc<Endpoint>,
    m2m: M2m,
    timeout: Duration,
    /// Connections used to create many children at once.
    parallel: usize,
    cancel: CancellationToken,
    counter: Arc<AtomicU64>,
}

/// One setup request: what it is for, and the answer it must get.
pub(crate) struct Step {
    pub(crate) what: String,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) origin: Option<String>,
    pub(crate) ty: Option<u16>,
    pub(crate) body: String,
    pub(crate) want: u16,
}

impl Setup {
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        m2m: M2m,
        timeout: Duration,
        parallel: usize,
        cancel: CancellationToken,
    ) -> Self {
        Self { endpoint, m2m, timeout, parallel, cancel, counter: Arc::new(AtomicU64::new(0)) }
    }

    /// The same client, but not stopped by Ctrl-C: for the cleanup, which the timeout bounds.
    pub(crate) fn detached(&self) -> Self {
        Self { cancel: CancellationToken::new(), ..self.clone() }
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Conn> {
        Conn::open(self.endpoint.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {}", self.endpoint.url, e.detail))
    }

    /// Sends `step` and returns the answer's body, or a precise error.
    pub(crate) async fn call(&self, conn: &mut Conn, step: Step) -> anyhow::Result<Vec<u8>> {
        let Step { what, method, path, origin, ty, body, want } = step;
        let mut headers = m2m_headers(self.endpoint.host(), origin.as_deref(), &self.m2m.rvi, ty)?;
        let k = self.counter.fetch_add(1, Ordering::Relaxed);
        headers.insert(X_M2M_RI, format!("{}-setup-{k}", self.m2m.run).parse()?);
        let req = build_request(method.clone(), path.parse()?, headers, Bytes::from(body));
        let mut out = Vec::new();
        let head = tokio::select! {
            _ = self.cancel.cancelled() => anyhow::bail!("setup interrupted"),
            head = conn.send(req, &mut out, self.timeout) => head,
        }
        .map_err(|e| anyhow::anyhow!("setup: {what}: {method} {path}: {}", e.detail))?;
        if head.rsc != Some(want) {
            let rsc = head.rsc.map_or_else(|| "none".to_owned(), |r| r.to_string());
            anyhow::bail!(
                "setup: {what}: {method} {path} answered HTTP {}, X-M2M-RSC {rsc} (expected {want}): {}",
                head.status,
                String::from_utf8_lossy(&out[..out.len().min(2000)])
            );
        }
        Ok(out)
    }

    /// Registers the bench AE `bench-{run}` under the CSEBase at `cse_path`.
    pub(crate) async fn register_ae(
        &self,
        conn: &mut Conn,
        cse_path: &str,
        api: &str,
        origin: AeOrigin,
    ) -> anyhow::Result<BenchAe> {
        let rn = format!("bench-{}", self.m2m.run);
        let step = Step {
            what: "register the bench AE".into(),
            method: Method::POST,
            path: cse_path.to_owned(),
            origin: origin.originator(&self.m2m.run, 0),
            ty: Some(2),
            body: ae_body(&rn, api),
            want: 2001,
        };
        let answer = self.call(conn, step).await?;
        let aei = aei_of(&answer)?;
        Ok(BenchAe { path: format!("{cse_path}/{rn}"), aei })
    }

    /// Creates container `rn` under `parent`, as `ae`, with `mni` when given.
    pub(crate) async fn create_container(
        &self,
        conn: &mut Conn,
        ae: &BenchAe,
        parent: &str,
        rn: &str,
        mni: Option<u64>,
    ) -> anyhow::Result<String> {
        let mut cnt = serde_json::json!({ "rn": rn });
        if let Some(mni) = mni {
            cnt["mni"] = mni.into();
        }
        let step = Step {
            what: format!("create container {rn}"),
            method: Method::POST,
            path: parent.to_owned(),
            origin: Some(ae.aei.clone()),
            ty: Some(3),
            body: serde_json::json!({ "m2m:cnt": cnt }).to_string(),
            want: 2001,
        };
        self.call(conn, step).await?;
        Ok(format!("{parent}/{rn}"))
    }

    /// Creates `count` children of `parent` as `ae`: contentInstances or containers named
    /// `c{i}`, over several connections.
    pub(crate) async fn create_children(
        &self,
        ae: &BenchAe,
        parent: &str,
        kind: ChildType,
        count: u64,
        payload: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<()> {
        if count == 0 {
            return Ok(());
        }
        progress.set_length(count);
        progress.set_position(0);
        progress.set_message(format!("setup: creating {count} children of {parent}"));
        let next = Arc::new(AtomicU64::new(0));
        let cin = cin_body(payload);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.parallel.clamp(1, count as usize) {
            let (setup, ae, parent, next, cin, progress) =
                (self.clone(), ae.clone(), parent.to_owned(), next.clone(), cin.clone(), progress.clone());
            tasks.spawn(async move {
                let mut conn = setup.connect().await?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return anyhow::Ok(());
                    }
                    let body = match kind {
                        ChildType::Cnt => serde_json::json!({ "m2m:cnt": { "rn": format!("c{i}") } }).to_string(),
                        ChildType::Cin => cin.clone(),
                    };
                    let step = Step {
                        what: format!("create child {i}"),
                        method: Method::POST,
                        path: parent.clone(),
                        origin: Some(ae.aei.clone()),
                        ty: Some(kind.ty()),
                        body,
                        want: 2001,
                    };
                    setup.call(&mut conn, step).await?;
                    progress.inc(1);
                }
            });
        }
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let r = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = r {
                tasks.abort_all();
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        progress.set_message("");
        result
    }

    /// Deletes the bench AE and everything under it.
    pub(crate) async fn delete_ae(&self, conn: &mut Conn, ae: &BenchAe) -> anyhow::Result<()> {
        let step = Step {
            what: "delete the bench AE".into(),
            method: Method::DELETE,
            path: ae.path.clone(),
            origin: Some(ae.aei.clone()),
            ty: None,
            body: String::new(),
            want: 2002,
        };
        self.call(conn, step).await.map(drop)
    }
}

/// The `aei` of a CREATE answer `{"m2m:ae": {..., "aei": ...}}`.
pub(crate) fn aei_of(answer: &[u8]) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(answer)
        .map_err(|e| anyhow::anyhow!("the AE CREATE answer is not JSON ({e}): {}", String::from_utf8_lossy(answer)))?;
    v.get("m2m:ae")
        .and_then(|ae| ae.get("aei"))
        .and_then(|aei| aei.as_str())
        .filter(|aei| !aei.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the AE CREATE answer has no m2m:ae.aei: {}", String::from_utf8_lossy(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aei_comes_from_the_create_answer() {
        let answer = br#"{"m2m:ae":{"rn":"bench-x","ri":"Cabc","aei":"Cabc","api":"Nbench.app"}}"#;
        assert_eq!(aei_of(answer).unwrap(), "Cabc");
        assert!(aei_of(br#"{"m2m:ae":{"rn":"x"}}"#).unwrap_err().to_string().contains("no m2m:ae.aei"));
        assert!(aei_of(br#"{"m2m:ae":{"aei":""}}"#).is_err());
        assert!(aei_of(b"oops").unwrap_err().to_string().contains("not JSON"));
    }

    #[test]
    fn child_types() {
        assert_eq!(ChildType::Cin.ty(), 4);
        assert_eq!(ChildType::Cnt.ty(), 3);
    }
}
