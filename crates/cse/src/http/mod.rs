//! The HTTP binding (TS-0009): one handler turns any path plus the X-M2M-* headers into a request
//! primitive, hands it to the core, and maps the response primitive back. Beside it: `/healthz`,
//! `/metrics` and, when enabled, the TS-0019 Upper Tester endpoint `POST /__ut__`.
//!
//! Bodies are limited by [`HttpConfig::max_body`] as they arrive (with or without `Content-Length`)
//! and by [`HttpConfig::body_timeout`]; a body the handler did not read to its end closes the
//! connection after the answer. Every answer echoes `X-M2M-RI` and `X-M2M-RVI`, and is in the
//! serialisation that `mapping::negotiate` chose. Requests are counted in [`crate::telemetry`].
//!
//! # Architecture invariant
//! Only this module (and `net`) knows HTTP. Client mistakes are answered with their oneM2M response
//! status code and a reason in `m2m:dbg`; axum's default plain-text rejections are never used.

mod mapping;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request as HttpRequest, State};
use axum::middleware::{self, Next};
use axum::routing::{get, post};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, Version};
use onem2m::{Error, Operation, Response, Rsc};

use appid::Role;
use registry::auth::{TokenTable, hash_token};

use crate::core::{Binding, Cse, Ctx, SecurityAssociation};
use crate::net::Peer;
use crate::telemetry;

const X_M2M_UTCMD: HeaderName = HeaderName::from_static("x-m2m-utcmd");
const X_M2M_UTRSP: HeaderName = HeaderName::from_static("x-m2m-utrsp");

/// Limits of the HTTP binding.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest request body accepted, with or without `Content-Length` (chunked bodies are
    /// counted as they arrive). A larger one is answered 4000 (HTTP 400, per the RSC table) with the
    /// limit in `m2m:dbg`, without reading the rest, and the connection is closed. Default 1 MiB.
    pub max_body: usize,
    /// How long the body of a request may take to arrive once its headers are in; a slower one is
    /// answered 4008 REQUEST_TIMEOUT and the connection is closed. Default 30 s.
    pub body_timeout: Duration,
    /// The longest a request is held for its operation execution time (`oet`); a later one is
    /// refused (4000). Default 60 s.
    pub max_oet_wait: Duration,
    /// The tokens that prove the admin: for the admin API (`/admin/...`), and for the admin
    /// originator when admission is enforced. Without them the admin API is not served.
    pub admin_tokens: Option<Arc<TokenTable>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            max_oet_wait: Duration::from_secs(60),
            admin_tokens: None,
        }
    }
}

impl HttpConfig {
    /// Accepts `token` as the admin's.
    pub fn with_admin_token(mut self, token: &str) -> Self {
        let table = TokenTable::default();
        table.insert(hash_token(token), Role::Admin);
        self.admin_tokens = Some(Arc::new(table));
        self
    }

    /// Checks that the limits are usable (a configuration loader reports the error as a usage
    /// error).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_body == 0 {
            return Err("max_body_bytes must be at least 1".into());
        }
        if self.body_timeout.is_zero() {
            return Err("body_timeout must be longer than zero".into());
        }
        Ok(())
    }

    fn is_admin(&self, authorization: Option<&HeaderValue>) -> bool {
        self.admin_tokens
            .as_ref()
            .is_some_and(|t| t.check(authorization.map(HeaderValue::as_bytes), Role::Admin).is_ok())
    }
}

struct App {
    cse: Arc<Cse>,
    cfg: HttpConfig,
}

/// The router of the CSE's HTTP listener(s). Every response, also from `/healthz`, `/metrics`,
/// `/__ut__`, `/admin/...` and for a method a route does not serve (4005), echoes the request's
/// `X-M2M-RI` and `X-M2M-RVI`.
pub fn router(cse: Arc<Cse>, cfg: HttpConfig) -> Router {
    telemetry::install();
    let upper_tester = cse.config().upper_tester;
    let app = Arc::new(App { cse, cfg });
    let mut r = Router::new()
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/metrics", get(metrics).fallback(method_not_allowed));
    if upper_tester {
        r = r.route("/__ut__", post(upper_tester_cmd).fallback(method_not_allowed));
    }
    if app.cfg.admin_tokens.is_some() {
        r = r.route("/admin/decisions", get(decisions).fallback(method_not_allowed));
    }
    r.route_layer(middleware::from_fn(echo_ids)).fallback(onem2m).with_state(app)
}

/// Puts the request's `X-M2M-RI` and `X-M2M-RVI` on a response of the routes beside the oneM2M
/// handler (which sets them itself).
async fn echo_ids(req: HttpRequest, next: Next) -> axum::response::Response {
    let ri = req.headers().get(mapping::X_M2M_RI).cloned();
    let rvi = req.headers().get(mapping::X_M2M_RVI).cloned();
    let mut resp = next.run(req).await;
    for (name, v) in [(mapping::X_M2M_RI, ri), (mapping::X_M2M_RVI, rvi)] {
        if let Some(v) = v {
            resp.headers_mut().entry(name).or_insert(v);
        }
    }
    resp
}

/// A method a route does not serve: 4005 with the reason, in the oneM2M way.
async fn method_not_allowed(State(app): State<Arc<App>>, req: HttpRequest) -> axum::response::Response {
    let echo = mapping::echo_of(req.headers());
    let e =
        Error::new(Rsc::OperationNotAllowed, format!("method {} is not allowed on {}", req.method(), req.uri().path()));
    early_error(&app, &echo, &e, false)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> axum::response::Response {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    build(status, h, Bytes::from(body.to_string()))
}

/// `GET /admin/decisions?appId=&aeId=&outcome=&limit=&before=`: the admission decision log,
/// newest first. Needs the admin bearer token.
async fn decisions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> axum::response::Response {
    let err = |status: StatusCode, msg: &str| json_response(status, &serde_json::json!({"error": msg}));
    if !app.cfg.is_admin(headers.get(http::header::AUTHORIZATION)) {
        return err(StatusCode::UNAUTHORIZED, "the admin token is required (Authorization: Bearer)");
    }
    let Some(admission) = app.cse.admission() else {
        return json_response(StatusCode::OK, &serde_json::json!({"decisions": [], "admission": "off"}));
    };
    let mut f = crate::store::decisions::DecisionFilter { limit: 100, ..Default::default() };
    for pair in query.as_deref().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "appId" | "app-id" => f.app_id = Some(v.to_owned()),
            "aeId" | "ae-id" => f.ae_id = Some(v.to_owned()),
            "outcome" if matches!(v, "admitted" | "rejected") => f.outcome = Some(v.to_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => f.limit = n,
                _ => return err(StatusCode::BAD_REQUEST, "limit must be from 1 to 1000"),
            },
            "before" => match v.parse() {
                Ok(n) => f.before = Some(n),
                Err(_) => return err(StatusCode::BAD_REQUEST, "before must be a sequence number"),
            },
            other => return err(StatusCode::BAD_REQUEST, &format!("unknown or invalid parameter {other}")),
        }
    }
    match admission.decisions().query(f).await {
        Ok(list) => json_response(StatusCode::OK, &serde_json::json!({"decisions": list})),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the decision log");
            err(StatusCode::SERVICE_UNAVAILABLE, "the decision log cannot be read")
        }
    }
}

/// `GET /healthz`: 200 `ok` when the store answers a read (the CSEBase), 503 with the reason when
/// it does not. Not a oneM2M request: it notifies no subscription (`om` on the CSEBase included).
async fn healthz(State(app): State<Arc<App>>) -> axum::response::Response {
    let (status, text) = match app.cse.health().await {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(e) => {
            tracing::warn!(rsc = e.rsc.code(), reason = %e.dbg, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("unavailable: {}\n", e.dbg))
        }
    };
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    build(status, h, Bytes::from(text))
}

async fn metrics() -> axum::response::Response {
    let mut resp = axum::response::Response::new(Body::from(telemetry::render()));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

fn build(status: StatusCode, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let mut resp = axum::response::Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The answer to a request that failed before the core saw it. `close` ends the connection after
/// the answer (HTTP/1): for a body that was not read to its end.
fn early_error(app: &App, echo: &mapping::Echo, e: &Error, close: bool) -> axum::response::Response {
    let mut resp = Response::error(echo.rqi.clone(), e);
    resp.rvi = echo.rvi.clone();
    resp.ot = Some(app.cse.now());
    let (s, mut h, b) = mapping::from_primitive(&resp, echo.format, echo.vsi.as_deref());
    if close {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    build(s, h, b)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The security association of the connection a request came on, from the TLS layer: a verified
/// one, or one whose certificate did not verify (marked so; the core refuses its requests).
fn security_association(ext: &http::Extensions) -> Option<SecurityAssociation> {
    let peer = ext.get::<Peer>()?;
    if let Some(id) = &peer.identity {
        return Some(SecurityAssociation {
            credential_id: id.cert_sha256.to_hex(),
            app_id: Some(id.app_id.to_string()),
            ae_id: id.ae_id_uri.clone(),
            root_sha256: Some(id.root_sha256.to_hex()),
            unverified: None,
        });
    }
    let u = peer.unverified.as_ref()?;
    Some(SecurityAssociation {
        credential_id: u.cert_sha256.to_hex(),
        app_id: u.app_id.as_ref().map(ToString::to_string),
        ae_id: u.ae_id_uri.clone(),
        root_sha256: None,
        unverified: Some(crate::core::Unverified {
            reason: u.error.reason(),
            message: u.error.to_string(),
            chain: u.chain.iter().map(|c| c.to_vec()).collect(),
        }),
    })
}

/// Why a request body could not be taken.
enum BodyError {
    TooLarge,
    TooSlow,
    Broken,
}

/// Reads a body of at most `max` bytes within `timeout`, whether it has a `Content-Length` or is
/// chunked: the limit counts the bytes as they arrive, so an oversized body is never buffered.
async fn read_body(body: Body, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(BodyError::TooSlow),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let limit = std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<http_body_util::LengthLimitError>().is_some());
            Err(if limit { BodyError::TooLarge } else { BodyError::Broken })
        }
    }
}

async fn onem2m(State(app): State<Arc<App>>, req: http::Request<Body>) -> axum::response::Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let echo = mapping::echo_of(&parts.headers);
    let op = mapping::operation_of(&parts.method, &parts.headers);
    // The connection can only be closed by a header in HTTP/1; HTTP/2 resets the stream instead.
    let http1 = parts.version < Version::HTTP_2;
    let fail = |e: &Error, close: bool| {
        telemetry::request(op, None, e.rsc, start.elapsed());
        early_error(&app, &echo, e, close && http1)
    };
    if let Some(e) = &echo.not_acceptable {
        return fail(e, false);
    }
    let max = app.cfg.max_body;
    let too_large = Error::bad_request(format!("the request body is larger than the limit of {max} bytes"));
    if content_length(&parts.headers).is_some_and(|n| n > max as u64) {
        return fail(&too_large, true);
    }
    let bytes = match read_body(body, max, app.cfg.body_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return fail(&too_large, true),
        Err(BodyError::TooSlow) => {
            let secs = app.cfg.body_timeout.as_secs_f64();
            return fail(
                &Error::new(Rsc::RequestTimeout, format!("the request body did not arrive within {secs} s")),
                true,
            );
        }
        Err(BodyError::Broken) => return fail(&Error::bad_request("the request body could not be read"), true),
    };
    let admin_authenticated = app.cfg.is_admin(parts.headers.get(http::header::AUTHORIZATION));
    let ctx = Ctx {
        binding: Binding::Http,
        sa: security_association(&parts.extensions),
        payload_len: bytes.len(),
        admin_authenticated,
        remote_addr: parts.extensions.get::<Peer>().map(|p| p.remote_addr.ip()),
    };
    let req = match mapping::to_primitive(&parts.method, parts.uri.path(), parts.uri.query(), &parts.headers, &bytes) {
        Ok(r) => r,
        Err(e) => return fail(&e, false),
    };
    if req.oet.is_some() || req.rset.is_some() {
        match mapping::schedule(&req, app.cse.now(), app.cfg.max_oet_wait) {
            Ok(wait) if wait.is_zero() => {}
            Ok(wait) => tokio::time::sleep(wait).await,
            Err(e) => return fail(&e, false),
        }
    }
    let (op, created) = (req.op, req.ty);
    let (resp, target) = telemetry::with_target_type(app.cse.handle(req, &ctx)).await;
    let ty = if op == Operation::Create { created } else { target };
    telemetry::request(Some(op), ty, resp.rsc, start.elapsed());
    let (status, headers, body) = mapping::from_primitive(&resp, echo.format, echo.vsi.as_deref());
    build(status, headers, body)
}

async fn upper_tester_cmd(State(app): State<Arc<App>>, headers: HeaderMap) -> axum::response::Response {
    let echo = mapping::echo_of(&headers);
    let cmd = headers.get(&X_M2M_UTCMD).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match app.cse.upper_tester(cmd).await {
        Ok(reply) => {
            let mut resp = Response::new(reply.rsc, echo.rqi.clone());
            resp.rvi = echo.rvi.clone();
            resp.ot = Some(app.cse.now());
            let (status, mut h, body) = mapping::from_primitive(&resp, echo.format, echo.vsi.as_deref());
            if let Some(v) = reply.utrsp.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
                h.insert(X_M2M_UTRSP, v);
            }
            build(status, h, body)
        }
        Err(e) => early_error(&app, &echo, &e, false),
    }
}
