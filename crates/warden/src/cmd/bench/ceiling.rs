//! The `ceiling` scenario's server: the least a oneM2M HTTP server can do. It answers every
//! request with `200`, `X-M2M-RSC: 2000`, the echoed `X-M2M-RI` and a small fixed body, on
//! 127.0.0.1 and a free port, on its own runtime thread(s) so that it competes with the client
//! for the CPU like a server in another process would. Optionally over TLS with a certificate
//! made at start (rcgen), so that HTTPS scenarios have a like-for-like ceiling.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::client::BaseUrl;
use super::workload::X_M2M_RI;

/// What the server answers: a CSEBase-like resource of about a hundred bytes.
const BODY: &[u8] = br#"{"m2m:cb":{"rn":"cse-in","ri":"id-in","csi":"/id-in","cst":1,"srv":["2a","3","4","5"]}}"#;

/// How long a TLS handshake may take before the server drops the connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running ceiling server; dropping it stops it.
pub(crate) struct CeilingServer {
    addr: SocketAddr,
    /// The certificate clients must trust when the server speaks TLS.
    cert: Option<CertificateDer<'static>>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl CeilingServer {
    /// Starts the server on `threads` runtime threads (1: a current-thread runtime), and
    /// returns once its thread runs.
    pub(crate) async fn start(threads: usize, tls: bool) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (acceptor, cert) = if tls {
            let (acceptor, cert) = self_signed_acceptor()?;
            (Some(acceptor), Some(cert))
        } else {
            (None, None)
        };
        let runtime = super::runtime(threads, super::cpu::SERVER_THREADS)?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new().name(super::cpu::SERVER_THREADS.into()).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(listener, acceptor, token).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        let server = Self { addr, cert, stop, thread: Some(thread) };
        // Once the thread runs, it has its name (for the CPU accounting) and serves.
        match ready.await {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => Err(anyhow::anyhow!("ceiling server: {e}")),
            Err(_) => Err(anyhow::anyhow!("the ceiling server's thread stopped at start")),
        }
    }

    /// The URL to send requests to.
    pub(crate) fn url(&self) -> BaseUrl {
        BaseUrl {
            https: self.cert.is_some(),
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            prefix: String::new(),
        }
    }

    /// A client configuration that trusts this server, when it speaks TLS.
    pub(crate) fn client_tls(&self) -> anyhow::Result<Option<rustls::ClientConfig>> {
        let Some(cert) = &self.cert else { return Ok(None) };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone())?;
        Ok(Some(super::client::client_tls_config_with(roots, None)?))
    }
}

impl Drop for CeilingServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn self_signed_acceptor() -> anyhow::Result<(TlsAcceptor, CertificateDer<'static>)> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert))
}

async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, stop: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("ceiling server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), service_fn(answer)).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        let _ = http.serve_connection(TokioIo::new(stream), service_fn(answer)).await;
                    }
                }
            }
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ri = req.headers().get(X_M2M_RI).cloned();
    // Read the request body (if any) so that the connection can be kept alive; keep none of it.
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("x-m2m-rsc", HeaderValue::from_static("2000"));
    if let Some(ri) = ri {
        h.insert(X_M2M_RI, ri);
    }
    Ok(resp)
}
