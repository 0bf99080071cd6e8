//! A notification receiver for tests: an HTTP server on 127.0.0.1:0 that records every request it
//! gets and answers with a configurable response status code. It can also hold every request open
//! until released, to play a target that never answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{Notify, watch};

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Value,
}

struct Inner {
    got: Mutex<Vec<Received>>,
    arrived: Notify,
    rsc: Mutex<u16>,
    hold: watch::Receiver<bool>,
}

/// A running notification sink.
pub struct Sink {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    release: watch::Sender<bool>,
}

impl Sink {
    /// Starts a sink that answers 2000 at once.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Starts a sink that holds every request open until [`Sink::release`].
    pub async fn start_holding() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(hold: bool) -> Self {
        let (release, hold_rx) = watch::channel(hold);
        let inner = Arc::new(Inner {
            got: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            rsc: Mutex::new(2000),
            hold: hold_rx,
        });
        let state = inner.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                state.got.lock().push(Received { headers: headers.clone(), body });
                state.arrived.notify_waiters();
                let mut hold = state.hold.clone();
                while *hold.borrow_and_update() {
                    if hold.changed().await.is_err() {
                        break;
                    }
                }
                let rsc = *state.rsc.lock();
                let mut h = HeaderMap::new();
                h.insert("x-m2m-rsc", HeaderValue::from(rsc));
                if let Some(ri) = headers.get("x-m2m-ri") {
                    h.insert("x-m2m-ri", ri.clone());
                }
                let status = if rsc < 3000 { StatusCode::OK } else { StatusCode::FORBIDDEN };
                (status, h)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, release }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers with `rsc` from now on.
    pub fn answer(&self, rsc: u16) {
        *self.inner.rsc.lock() = rsc;
    }

    /// Lets held requests (and all later ones) be answered.
    pub fn release(&self) {
        let _ = self.release.send(false);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.got.lock().clone()
    }

    /// Waits until a received request satisfies `pred`, at most `timeout`; returns it.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(r) = self.inner.got.lock().iter().find(|r| pred(r)) {
                return Some(r.clone());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.inner.got.lock().iter().find(|r| pred(r)).cloned();
            }
        }
    }
}
