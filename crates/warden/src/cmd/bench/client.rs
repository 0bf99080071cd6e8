//! The HTTP client of the load generator: hyper's low-level HTTP/1.1 connection over a
//! `TcpStream` (optionally wrapped in rustls), one keep-alive connection per worker, reopened
//! when the server closes it.
//!
//! It is deliberately thinner than reqwest: no pool, no redirect or proxy logic, the address
//! resolved once. On a 2-core machine the client shares the CPU with the server it measures,
//! so every microsecond it spends is taken from the result.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body the client reads; a bigger one fails the request.
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;

/// A base URL: `http(s)://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Empty, or a path prefix starting with `/` and without a trailing `/`.
    pub(crate) prefix: String,
}

impl BaseUrl {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("`{s}`: the scheme must be http or https, not {other}")),
            None => return Err(format!("`{s}`: give the scheme, e.g. http://127.0.0.1:8080")),
        };
        let authority = uri.authority().ok_or_else(|| format!("`{s}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{s}`: credentials in the URL are not supported"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if uri.query().is_some() {
            return Err(format!("`{s}`: a base URL takes no query"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self { https, host, port, prefix })
    }

    /// The `Host` header value.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.https { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.prefix)
    }
}

/// The TLS files given on the command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFiles {
    pub(crate) cacert: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the client TLS configuration: the server is verified against `--cacert`, and the
/// client presents `--cert`/`--key` when given.
pub(crate) fn client_tls_config(files: &TlsFiles) -> anyhow::Result<rustls::ClientConfig> {
    let cacert = files
        .cacert
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("an https target needs --cacert FILE (the CA of the server's certificate)"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(cacert)? {
        roots.add(cert).map_err(|e| anyhow::anyhow!("{}: not a usable CA certificate: {e}", cacert.display()))?;
    }
    let client_identity = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Some((read_certs(cert)?, read_key(key)?)),
        (None, None) => None,
        _ => anyhow::bail!("--cert and --key go together"),
    };
    client_tls_config_with(roots, client_identity)
}

/// A client configuration from roots already loaded and an optional client identity.
pub(crate) fn client_tls_config_with(
    roots: rustls::RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> anyhow::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| anyhow::anyhow!("the client certificate and key do not work together: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{}: cannot read PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in the file", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read a PEM private key: {e}", path.display()))
}

/// Where requests go: a resolved address, the `Host` header, and TLS when the URL is https.
pub(crate) struct Endpoint {
    pub(crate) url: BaseUrl,
    addr: SocketAddr,
    host: HeaderValue,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Resolves the URL's host once and prepares TLS. `tls` must be given for an https URL.
    pub(crate) async fn new(url: BaseUrl, tls: Option<rustls::ClientConfig>) -> anyhow::Result<Arc<Self>> {
        let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot resolve {}: {e}", url.host))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} resolves to no address", url.host))?;
        let host = HeaderValue::from_str(&url.authority())?;
        let tls = match (url.https, tls) {
            (true, Some(config)) => {
                let name = ServerName::try_from(url.host.clone())
                    .map_err(|e| anyhow::anyhow!("{} is not a TLS server name: {e}", url.host))?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
            (true, None) => anyhow::bail!("{url}: https needs a TLS configuration"),
            (false, _) => None,
        };
        Ok(Arc::new(Self { url, addr, host, tls }))
    }

    /// The `Host` header value for every request.
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// The request path for `path` (which starts with `/`), with the URL's prefix.
    pub(crate) fn path(&self, path: &str) -> String {
        format!("{}{path}", self.url.prefix)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| TransportError::new("connect timeout", format!("connect to {} timed out", self.addr)))?
            .map_err(|e| TransportError::io(&e, format!("connect to {}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| TransportError::new("tls handshake", "the TLS handshake timed out".into()))?
                    .map_err(|e| {
                        TransportError::new("tls handshake", format!("TLS handshake with {}: {e}", self.url))
                    })?;
                handshake(tls).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, TransportError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| TransportError::hyper(&e, "HTTP handshake"))?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the worker drops its sender.
        let _ = conn.await;
    });
    Ok(sender)
}

/// A failure to get an answer at all.
#[derive(Debug, Clone)]
pub(crate) struct TransportError {
    /// A short class used to count errors: `connection refused`, `timeout`, `tls handshake`, ...
    pub(crate) kind: &'static str,
    /// The full story, for the first-error report.
    pub(crate) detail: String,
}

impl TransportError {
    fn new(kind: &'static str, detail: String) -> Self {
        Self { kind, detail }
    }

    fn io(e: &std::io::Error, what: String) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::ConnectionRefused => "connection refused",
            K::ConnectionReset => "connection reset",
            K::ConnectionAborted => "connection aborted",
            K::BrokenPipe => "broken pipe",
            K::TimedOut => "timeout",
            K::AddrNotAvailable | K::AddrInUse => "no local port",
            K::UnexpectedEof => "connection closed",
            _ => "io error",
        };
        Self::new(kind, format!("{what}: {e}"))
    }

    fn hyper(e: &hyper::Error, what: &str) -> Self {
        let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
        if let Some(io) = io {
            return Self::io(io, format!("{what}: {e}"));
        }
        let kind = if e.is_parse() || e.is_parse_status() {
            "bad HTTP from the server"
        } else if e.is_timeout() {
            "timeout"
        } else {
            // incomplete message, canceled, closed: the server went away mid-request.
            "connection closed"
        };
        Self::new(kind, format!("{what}: {}", error_chain(e)))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The part of an answer the scenarios judge; the body goes to a buffer the caller reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// `X-M2M-RSC`, when present and numeric.
    pub(crate) rsc: Option<u16>,
}

/// One keep-alive connection, reopened on demand.
pub(crate) struct Conn {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened so far, including the first.
    pub(crate) opened: u64,
}

impl Conn {
    /// Opens the connection now, so that a wrong address fails before any measurement.
    pub(crate) async fn open(endpoint: Arc<Endpoint>) -> Result<Self, TransportError> {
        let sender = endpoint.connect().await?;
        Ok(Self { endpoint, sender: Some(sender), opened: 1 })
    }

    /// A ready sender: the current one if it is still usable, else a new connection.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, TransportError> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            self.sender = Some(self.endpoint.connect().await?);
            self.opened += 1;
        }
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// Sends `req`, reads the whole answer into `body` (cleared first) within `timeout`.
    pub(crate) async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
        body: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<Head, TransportError> {
        match tokio::time::timeout(timeout, self.exchange(req, body)).await {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                // The answer may still come: the connection cannot be reused.
                self.sender = None;
                Err(TransportError::new("timeout", format!("no complete answer within {timeout:?}")))
            }
        }
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>, body: &mut Vec<u8>) -> Result<Head, TransportError> {
        let sender = self.ready().await?;
        let resp = sender.send_request(req).await.map_err(|e| TransportError::hyper(&e, "request"))?;
        let status = resp.status().as_u16();
        let rsc =
            resp.headers().get("x-m2m-rsc").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u16>().ok());
        let mut incoming = resp.into_body();
        body.clear();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| TransportError::hyper(&e, "reading the answer"))?;
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > MAX_BODY {
                    return Err(TransportError::new(
                        "answer too large",
                        format!("the answer's body exceeds {MAX_BODY} bytes"),
                    ));
                }
                body.extend_from_slice(&data);
            }
        }
        Ok(Head { status, rsc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u, BaseUrl { https: false, host: "127.0.0.1".into(), port: 8080, prefix: String::new() });
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(u.to_string(), "http://127.0.0.1:8080");

        let u = BaseUrl::parse("https://cse.example.com/base/").unwrap();
        assert_eq!((u.https, u.port, u.prefix.as_str()), (true, 443, "/base"));
        assert_eq!(u.authority(), "cse.example.com");
        assert_eq!(u.to_string(), "https://cse.example.com/base");

        let u = BaseUrl::parse("http://[::1]:7070").unwrap();
        assert_eq!((u.host.as_str(), u.authority()), ("::1", "[::1]:7070".to_owned()));

        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "http://h/p?q=1", "http://u:p@h", "not a url"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_needs_a_ca_and_cert_with_key() {
        let none = TlsFiles::default();
        let e = client_tls_config(&none).unwrap_err().to_string();
        assert!(e.contains("--cacert"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let only_cert = TlsFiles { cacert: Some(ca_path.clone()), cert: Some(ca_path.clone()), key: None };
        let e = client_tls_config(&only_cert).unwrap_err().to_string();
        assert!(e.contains("--cert and --key go together"), "{e}");

        let dev = rcgen::generate_simple_self_signed(vec!["device".to_owned()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("dev.pem"), dir.path().join("dev.key"));
        std::fs::write(&cert_path, dev.cert.pem()).unwrap();
        std::fs::write(&key_path, dev.signing_key.serialize_pem()).unwrap();
        let full = TlsFiles { cacert: Some(ca_path.clone()), cert: Some(cert_path), key: Some(key_path.clone()) };
        let config = client_tls_config(&full).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);

        let bad = TlsFiles { cacert: Some(key_path), cert: None, key: None };
        let e = client_tls_config(&bad).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        let missing = TlsFiles { cacert: Some(dir.path().join("nope.pem")), cert: None, key: None };
        assert!(client_tls_config(&missing).unwrap_err().to_string().contains("nope.pem"));
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = BaseUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let ep = Endpoint::new(url, None).await.unwrap();
        let e = Conn::open(ep).await.err().unwrap();
        assert_eq!(e.kind, "connection refused", "{}", e.detail);
        assert!(e.detail.contains(&port.to_string()), "{}", e.detail);
    }

    /// A TLS server that requires a client certificate from `client_ca` and answers with the
    /// number of certificates the client presented.
    async fn mtls_server(server: &rcgen::CertifiedKey<rcgen::KeyPair>, client_ca: &rcgen::Certificate) -> SocketAddr {
        use rustls::server::WebPkiClientVerifier;
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client_ca.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
        let key = PrivateKeyDer::Pkcs8(server.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let presented = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
                    let service = hyper::service::service_fn(move |_req| async move {
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(presented.to_string())));
                        resp.headers_mut().insert("x-m2m-rsc", HeaderValue::from_static("2000"));
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_client_certificate_is_presented_over_mutual_tls() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let server = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let device_key = KeyPair::generate().unwrap();
        let device =
            CertificateParams::new(vec!["device.example".to_owned()]).unwrap().signed_by(&device_key, &issuer).unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("server.pem"), server.cert.pem()).unwrap();
        std::fs::write(path("device.pem"), device.pem()).unwrap();
        std::fs::write(path("device.key"), device_key.serialize_pem()).unwrap();
        let addr = mtls_server(&server, &ca).await;
        let url = BaseUrl::parse(&format!("https://{addr}")).unwrap();

        let files = TlsFiles {
            cacert: Some(path("server.pem")),
            cert: Some(path("device.pem")),
            key: Some(path("device.key")),
        };
        let ep = Endpoint::new(url.clone(), Some(client_tls_config(&files).unwrap())).await.unwrap();
        let mut conn = Conn::open(ep.clone()).await.unwrap();
        let mut body = Vec::new();
        for _ in 0..3 {
            let req = crate::cmd::bench::workload::build_request(
                hyper::Method::GET,
                Uri::from_static("/cse-in"),
                [(hyper::header::HOST, ep.host().clone())].into_iter().collect(),
                Bytes::new(),
            );
            let head = conn.send(req, &mut body, Duration::from_secs(10)).await.unwrap();
            assert_eq!((head.status, head.rsc), (200, Some(2000)));
            assert_eq!(body, b"1", "the server saw the client certificate");
        }
        assert_eq!(conn.opened, 1, "one keep-alive connection");

        // Without a client certificate the server refuses (with TLS 1.3, at the first request).
        let anonymous = TlsFiles { cacert: Some(path("server.pem")), cert: None, key: None };
        let ep = Endpoint::new(url, Some(client_tls_config(&anonymous).unwrap())).await.unwrap();
        let refused = match Conn::open(ep.clone()).await {
            Err(e) => e,
            Ok(mut conn) => {
                let req = crate::cmd::bench::workload::build_request(
                    hyper::Method::GET,
                    Uri::from_static("/cse-in"),
                    [(hyper::header::HOST, ep.host().clone())].into_iter().collect(),
                    Bytes::new(),
                );
                conn.send(req, &mut body, Duration::from_secs(10)).await.unwrap_err()
            }
        };
        assert!(refused.detail.to_lowercase().contains("certificate"), "{refused:?}");
    }
}
