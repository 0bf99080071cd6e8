//! Accept loops: serve a tower service (an `axum::Router`) over plain TCP or TLS, with HTTP/1.1 and
//! HTTP/2 (ALPN over TLS, the connection preface over plain TCP), bounded in every direction.
//!
//! # What every request carries
//! Exactly one [`Peer`] extension, on every connection: the remote address, whether the connection
//! is TLS, and what the client's certificate proved. `identity` is `Some` only on a TLS connection
//! whose client presented a certificate that verified; `unverified` is `Some` when it presented one
//! that did not (the binding must refuse such requests, see [`crate::tls::UnverifiedPeer`]); a plain
//! connection, or a TLS one without a client certificate, has neither, meaning "no security
//! association" to the admission code. An unverified certificate is checked again, before a request,
//! when the trust map changed since the last check (the App-ID's roots may have been learned
//! meanwhile, e.g. by an AE registration on this very connection). Handlers can therefore always
//! extract `Extension<Peer>` (a missing extension would be a 500).
//!
//! # Limits ([`NetLimits`])
//! - **Connections**: at most `max_connections` at once. When all are in use the loop stops accepting,
//!   so new clients wait in the kernel's listen backlog until a connection ends (and give up on their
//!   own connect timeout). Accepting and then dropping them would only turn a burst into a storm of
//!   retries; the timeouts below make sure slots come free.
//! - **TLS handshake**: `tls_handshake_timeout` from accept; a client that never sends its hello is
//!   dropped then, and holds no more than its own slot meanwhile (handshakes run in the connection's
//!   task, never in the accept loop).
//! - **HTTP/1 headers**: hyper's `header_read_timeout`, which also bounds how long an HTTP/1
//!   keep-alive connection may sit idle between requests.
//! - **Idle**: a connection with no request in flight and none started for `idle_timeout` is shut
//!   down gracefully (this covers HTTP/2, and a plain connection that never sends a byte).
//! - **HTTP/2**: `max_concurrent_streams`, and a PING every `keep_alive_interval` to find dead peers.
//!
//! # Shutdown
//! When the `shutdown` future resolves, the listener is closed, every connection is asked to finish
//! (HTTP/1 closes after the response in flight, HTTP/2 sends GOAWAY), and `serve` returns once they
//! are all done, or after `grace_period`, when the remaining ones are dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::UnixTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::tls::{ClientIdentity, PeerIdentity, TlsConfig, TrustMap, TrustVersion, UnverifiedPeer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The bounds of an accept loop. See the module documentation for what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// Connections served at once (at least 1).
    pub max_connections: usize,
    /// From accept to the end of the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// For an HTTP/1 request's headers, counted from when the connection is ready for a request.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and none started for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval; `None` sends none.
    pub keep_alive_interval: Option<Duration>,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// How long shutdown waits for requests in flight.
    pub grace_period: Duration,
}

impl NetLimits {
    /// Checks that every bound is usable: at least one connection and stream, and every duration
    /// above zero (a zero timeout would close every connection at once). Configuration loaders call
    /// this and report the error as a usage error.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.max_concurrent_streams == 0 {
            return Err("max_concurrent_streams must be at least 1".into());
        }
        let durations = [
            ("tls_handshake_timeout", Some(self.tls_handshake_timeout)),
            ("header_read_timeout", Some(self.header_read_timeout)),
            ("idle_timeout", Some(self.idle_timeout)),
            ("keep_alive_interval", self.keep_alive_interval),
            ("grace_period", Some(self.grace_period)),
        ];
        for (name, d) in durations {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(format!("{name} must be longer than zero"));
            }
        }
        Ok(())
    }
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            keep_alive_interval: Some(Duration::from_secs(60)),
            max_concurrent_streams: 100,
            grace_period: Duration::from_secs(10),
        }
    }
}

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// Who is on the other end of the connection a request arrived on; inserted into every request's
/// extensions (see the module documentation).
#[derive(Debug, Clone)]
pub struct Peer {
    pub remote_addr: SocketAddr,
    pub transport: Transport,
    /// The verified client certificate's identity: the security association. `None` without one.
    pub identity: Option<Arc<PeerIdentity>>,
    /// A client certificate that was presented and did not verify (never with `identity`).
    pub unverified: Option<Arc<UnverifiedPeer>>,
}

/// The [`Peer`] of one connection, with its certificate checked again when the trust map changed.
struct PeerCell {
    current: parking_lot::Mutex<(Peer, Option<TrustVersion>)>,
    trust: Option<TrustMap>,
}

impl PeerCell {
    fn new(peer: Peer, trust: Option<TrustMap>) -> Self {
        let tried = trust.as_ref().map(TrustMap::version);
        Self { current: parking_lot::Mutex::new((peer, tried)), trust }
    }

    /// The peer for the next request.
    fn peer(&self) -> Peer {
        let mut cur = self.current.lock();
        if let (Some(u), Some(trust)) = (cur.0.unverified.clone(), &self.trust) {
            let now = trust.version();
            if cur.1 != Some(now) {
                cur.1 = Some(now);
                match trust.identify_presented(&u.chain, UnixTime::now()) {
                    ClientIdentity::Verified(id) => {
                        cur.0.identity = Some(Arc::new(id));
                        cur.0.unverified = None;
                    }
                    ClientIdentity::Unverified(again) => cur.0.unverified = Some(Arc::new(again)),
                    ClientIdentity::Anonymous => {}
                }
            }
        }
        cur.0.clone()
    }
}

/// Serves `service` on every connection `listener` accepts, over TLS when `tls` is given, until
/// `shutdown` resolves and the connections have finished (see the module documentation). The caller
/// binds the listener, so it knows the address (and tests can bind port 0).
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsConfig>,
    service: S,
    limits: NetLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let local = listener.local_addr().ok();
    let shared = Arc::new(Shared {
        builder: http_builder(&limits),
        limits,
        tls: tls.map(|t| (TlsAcceptor::from(t.server_config().clone()), t)),
        graceful: CancellationToken::new(),
        force: CancellationToken::new(),
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let tracker = TaskTracker::new();
    let transport = if shared.tls.is_some() { "tls" } else { "plain" };
    let mut warned_full: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_full.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(max = limits.max_connections, "connection limit reached; new connections wait");
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, remote_addr) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        metrics::counter!("warden_net_connections_total", "transport" => transport).increment(1);
        tracker.spawn(connection(shared.clone(), stream, remote_addr, service.clone(), permit));
    }
    drop(listener);
    tracing::debug!(listener = ?local, open = tracker.len(), "stopped accepting; finishing connections");
    shared.graceful.cancel();
    tracker.close();
    if timeout(limits.grace_period, tracker.wait()).await.is_err() {
        tracing::warn!(listener = ?local, open = tracker.len(), "grace period over; closing the remaining connections");
        shared.force.cancel();
        tracker.wait().await;
    }
}

struct Shared {
    builder: auto::Builder<TokioExecutor>,
    limits: NetLimits,
    tls: Option<(TlsAcceptor, TlsConfig)>,
    /// Ask connections to finish.
    graceful: CancellationToken,
    /// Drop them.
    force: CancellationToken,
}

fn http_builder(limits: &NetLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keep_alive_interval)
        .max_concurrent_streams(limits.max_concurrent_streams);
    builder
}

async fn connection<S, B>(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote_addr: SocketAddr,
    service: S,
    _permit: OwnedSemaphorePermit,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let Some((acceptor, tls)) = &shared.tls else {
        let peer = Peer { remote_addr, transport: Transport::Plain, identity: None, unverified: None };
        return drive(&shared, TokioIo::new(stream), service, PeerCell::new(peer, None)).await;
    };
    let handshake = timeout(shared.limits.tls_handshake_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        biased;
        () = shared.graceful.cancelled() => return,
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                handshake_outcome("failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote_addr, "TLS handshake timed out");
                handshake_outcome("timeout");
                return;
            }
        },
    };
    let (identity, unverified) = match tls.trust().identify_connection(stream.get_ref().1, UnixTime::now()) {
        ClientIdentity::Anonymous => {
            handshake_outcome("anonymous");
            (None, None)
        }
        ClientIdentity::Verified(id) => {
            handshake_outcome("client_certificate");
            (Some(Arc::new(id)), None)
        }
        ClientIdentity::Unverified(u) => {
            tracing::debug!(%remote_addr, error = %u.error, "client certificate does not verify; its requests are refused");
            handshake_outcome("unverified");
            (None, Some(Arc::new(u)))
        }
    };
    let peer = Peer { remote_addr, transport: Transport::Tls, identity, unverified };
    drive(&shared, TokioIo::new(stream), service, PeerCell::new(peer, Some(tls.trust().clone()))).await
}

/// Counts a TLS handshake by outcome: `client_certificate`, `anonymous` (no client certificate),
/// `unverified` (a certificate that does not verify against the trust map), `failed` (refused or
/// broken), `timeout`.
fn handshake_outcome(outcome: &'static str) {
    metrics::counter!("warden_tls_handshakes_total", "outcome" => outcome).increment(1);
}

/// Serves HTTP on one connection until it ends, is idle too long, or the server shuts down.
async fn drive<I, S, B>(shared: &Shared, io: I, service: S, peer: PeerCell)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let activity = Arc::new(Activity::new());
    let remote_addr = peer.current.lock().0.remote_addr;
    let open = metrics::gauge!("warden_net_connections_open");
    open.increment(1.0);
    let _open = Decrement(open);
    let service = ConnService { inner: service, peer: Arc::new(peer), activity: activity.clone() };
    let conn = shared.builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = sleep(shared.limits.idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            () = shared.force.cancelled() => return,
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
                }
                return;
            }
            () = shared.graceful.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut idle, if !closing => match activity.idle_deadline(Instant::now(), shared.limits.idle_timeout) {
                Some(deadline) => idle.as_mut().reset(deadline),
                None => {
                    tracing::debug!(%remote_addr, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            },
        }
    }
}

/// Decrements a gauge when dropped, however the connection ends.
struct Decrement(metrics::Gauge);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Requests in flight on a connection, and when the last one started or ended.
struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    last_millis: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { origin: Instant::now(), in_flight: AtomicUsize::new(0), last_millis: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// When the connection becomes idle, or `None` if it is idle at `now`.
    fn idle_deadline(&self, now: Instant, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(now + idle);
        }
        let deadline = self.origin + Duration::from_millis(self.last_millis.load(Ordering::Relaxed)) + idle;
        (deadline > now).then_some(deadline)
    }
}

/// A request in flight; dropped when its response is ready (or the request is abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The per-connection service: attaches the [`Peer`] and counts requests in flight.
#[derive(Clone)]
struct ConnService<S> {
    inner: S,
    peer: Arc<PeerCell>,
    activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer.peer());
        let in_flight = self.activity.begin();
        let service = self.inner.clone();
        Box::pin(async move {
            let response = service.oneshot(req).await;
            drop(in_flight);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_deadline_follows_requests() {
        let idle = Duration::from_secs(10);
        let a = Arc::new(Activity::new());
        let t0 = a.origin;
        assert_eq!(a.idle_deadline(t0, idle), Some(t0 + idle));
        assert_eq!(a.idle_deadline(t0 + idle, idle), None, "no request for the whole period");

        let before = Instant::now();
        let request = a.begin();
        let much_later = t0 + Duration::from_secs(1000);
        assert_eq!(a.idle_deadline(much_later, idle), Some(much_later + idle), "a request in flight is never idle");
        drop(request);
        let after = Instant::now();
        // Idleness counts from the end of the last request (kept to the millisecond).
        let deadline = a.idle_deadline(before, idle).unwrap();
        assert!(deadline + Duration::from_millis(1) >= before + idle && deadline <= after + idle);
        assert_eq!(a.idle_deadline(after + idle, idle), None);
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(NetLimits::default().validate(), Ok(()));
        assert_eq!(NetLimits { keep_alive_interval: None, ..NetLimits::default() }.validate(), Ok(()));
        let zero = Duration::ZERO;
        let bad = [
            (NetLimits { max_connections: 0, ..NetLimits::default() }, "max_connections"),
            (NetLimits { max_concurrent_streams: 0, ..NetLimits::default() }, "max_concurrent_streams"),
            (NetLimits { tls_handshake_timeout: zero, ..NetLimits::default() }, "tls_handshake_timeout"),
            (NetLimits { header_read_timeout: zero, ..NetLimits::default() }, "header_read_timeout"),
            (NetLimits { idle_timeout: zero, ..NetLimits::default() }, "idle_timeout"),
            (NetLimits { keep_alive_interval: Some(zero), ..NetLimits::default() }, "keep_alive_interval"),
            (NetLimits { grace_period: zero, ..NetLimits::default() }, "grace_period"),
        ];
        for (limits, field) in bad {
            let err = limits.validate().unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
    }
}
