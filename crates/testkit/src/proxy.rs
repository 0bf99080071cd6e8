//! A fault-injecting HTTP proxy for tests: it forwards every request to an upstream (the test
//! registry) with reqwest and, for the registry's lookups (`POST /v1/lookup`), can forge, truncate,
//! cut or hold the answer. Everything else (the change feed, the keys) always passes unchanged.
//!
//! It counts the lookups it receives, so a test can tell how many queries reached the registry,
//! and it reports held lookups, so a test knows one is in flight without guessing at timing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, TRANSFER_ENCODING};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

/// The largest request body forwarded.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The longest a lookup is held when nobody releases it, so that a failed test cannot hang.
const MAX_HOLD: Duration = Duration::from_secs(60);

/// What the proxy does to lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward the answer unchanged.
    None,
    /// Flip one bit of the middle byte of the answer's body: the signature no longer matches.
    FlipByte,
    /// Send only the first half of the body, framed as a complete response.
    Truncate,
    /// Announce the full length, send the first half of the body and close the connection.
    CutConnection,
    /// Hold the lookup until [`Proxy::release`], then forward it.
    Hold,
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    fault: Mutex<Fault>,
    lookups: AtomicU64,
    /// Lookups being held right now.
    holding: AtomicU64,
    held: Notify,
    /// Bumped by each release; held lookups wait for a change.
    release: watch::Sender<u64>,
}

/// A running proxy. It serves until the test's runtime ends.
pub struct Proxy {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

/// Decrements the held count when a held lookup ends, however it ends (the client may give up).
struct Holding<'a>(&'a Inner);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.holding.fetch_sub(1, Ordering::SeqCst);
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION || name == TRANSFER_ENCODING || name == CONTENT_LENGTH || name == HOST
}

fn bad_gateway(msg: String) -> Response {
    let mut resp = Response::new(Body::from(msg));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1:0 in front of `upstream` (e.g. `http://127.0.0.1:7070`).
    pub async fn start(upstream: &str) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            // Longer than any change-feed long-poll.
            .timeout(Duration::from_secs(120))
            .build()
            .expect("proxy client");
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            fault: Mutex::new(Fault::None),
            lookups: AtomicU64::new(0),
            holding: AtomicU64::new(0),
            held: Notify::new(),
            release: watch::channel(0).0,
        });
        let app = axum::Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What to do to lookups from now on.
    pub fn set(&self, fault: Fault) {
        *self.inner.fault.lock() = fault;
    }

    /// How many lookups the proxy received.
    pub fn lookups(&self) -> u64 {
        self.inner.lookups.load(Ordering::SeqCst)
    }

    /// How many lookups are being held right now.
    pub fn holding(&self) -> u64 {
        self.inner.holding.load(Ordering::SeqCst)
    }

    /// Waits until at least one lookup is held, at most `timeout`; true if one is.
    pub async fn wait_held(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let held = self.inner.held.notified();
            tokio::pin!(held);
            held.as_mut().enable();
            if self.holding() > 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, held).await.is_err() {
                return self.holding() > 0;
            }
        }
    }

    /// Lets every held lookup through (later ones are still held while the fault is `Hold`).
    pub fn release(&self) {
        self.inner.release.send_modify(|g| *g += 1);
    }
}

async fn forward(State(s): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return bad_gateway(format!("proxy: cannot read the request: {e}")),
    };
    let lookup = parts.method == Method::POST && parts.uri.path() == "/v1/lookup";
    let fault = if lookup {
        s.lookups.fetch_add(1, Ordering::SeqCst);
        *s.fault.lock()
    } else {
        Fault::None
    };
    if fault == Fault::Hold {
        let mut released = s.release.subscribe();
        s.holding.fetch_add(1, Ordering::SeqCst);
        let _holding = Holding(&s);
        s.held.notify_waiters();
        let _ = tokio::time::timeout(MAX_HOLD, released.changed()).await;
    }

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut rb = s.client.request(parts.method.clone(), format!("{}{path}", s.upstream));
    for (k, v) in parts.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
        rb = rb.header(k, v);
    }
    let upstream = match rb.body(body).send().await {
        Ok(r) => r,
        Err(e) => return bad_gateway(format!("proxy: upstream unreachable: {e}")),
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(e) => return bad_gateway(format!("proxy: upstream body: {e}")),
    };

    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    for (k, v) in headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
        resp.headers_mut().append(k.clone(), v.clone());
    }
    let half = bytes.slice(..bytes.len() / 2);
    *resp.body_mut() = match fault {
        Fault::None | Fault::Hold => Body::from(bytes),
        Fault::FlipByte => {
            let mut forged = bytes.to_vec();
            if let Some(b) = forged.get_mut(bytes.len() / 2) {
                *b ^= 0x01;
            }
            Body::from(forged)
        }
        Fault::Truncate => Body::from(half),
        Fault::CutConnection => {
            resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let chunks: [Result<Bytes, std::io::Error>; 2] =
                [Ok(half), Err(std::io::Error::other("proxy: connection cut on purpose"))];
            Body::from_stream(futures_util::stream::iter(chunks))
        }
    };
    resp
}
