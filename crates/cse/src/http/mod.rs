//! The HTTP binding (TS-0009): one handler turns any path plus the X-M2M-* headers into a request
//! primitive, hands it to the core, and maps the response primitive back. Beside it: `/healthz`,
//! `/metrics` and, when enabled, the TS-0019 Upper Tester endpoint `POST /__ut__`.
//!
//! # Architecture invariant
//! Only this module (and `net`) knows HTTP. Client mistakes are answered with their oneM2M response
//! status code and a reason in `m2m:dbg`; axum's default plain-text rejections are never used.

mod mapping;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use onem2m::{Error, Response, Rsc, Serialization};

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
    /// The largest request body accepted; larger ones get 413 (RSC 4000) without being read.
    pub max_body: usize,
    /// The tokens that prove the admin: for the admin API (`/admin/...`), and for the admin
    /// originator when admission is enforced. Without them the admin API is not served.
    pub admin_tokens: Option<Arc<TokenTable>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { max_body: 1024 * 1024, admin_tokens: None }
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

/// The router of the CSE's HTTP listener(s).
pub fn router(cse: Arc<Cse>, cfg: HttpConfig) -> Router {
    let upper_tester = cse.config().upper_tester;
    let app = Arc::new(App { cse, cfg });
    let mut r = Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics));
    if upper_tester {
        r = r.route("/__ut__", post(upper_tester_cmd));
    }
    if app.cfg.admin_tokens.is_some() {
        r = r.route("/admin/decisions", get(decisions));
    }
    r.fallback(onem2m).with_state(app)
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

async fn healthz() -> &'static str {
    "ok\n"
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

/// The answer to a request that failed before it became a primitive.
fn early_error(echo: &mapping::Echo, e: &Error, status: Option<StatusCode>) -> axum::response::Response {
    let mut resp = Response::error(echo.rqi.clone(), e);
    resp.rvi = echo.rvi.clone();
    let (s, h, b) = mapping::from_primitive(&resp, echo.accept);
    build(status.unwrap_or(s), h, b)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The security association of the connection a request came on, from the TLS layer.
fn security_association(ext: &http::Extensions) -> Option<SecurityAssociation> {
    let id = ext.get::<Peer>()?.identity.as_ref()?;
    Some(SecurityAssociation {
        credential_id: id.cert_sha256.to_hex(),
        app_id: Some(id.app_id.to_string()),
        ae_id: id.ae_id_uri.clone(),
        root_sha256: Some(id.root_sha256.to_hex()),
    })
}

async fn onem2m(State(app): State<Arc<App>>, req: http::Request<Body>) -> axum::response::Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let echo = mapping::echo_of(&parts.headers);
    let max = app.cfg.max_body;
    let too_large = || {
        let e = Error::bad_request(format!("the request body is larger than {max} bytes"));
        telemetry::request(None, None, Rsc::BadRequest, start.elapsed());
        early_error(&echo, &e, Some(StatusCode::PAYLOAD_TOO_LARGE))
    };
    if content_length(&parts.headers).is_some_and(|n| n > max as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => {
            let limit = std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<http_body_util::LengthLimitError>().is_some());
            if limit {
                return too_large();
            }
            return early_error(&echo, &Error::bad_request("the request body could not be read"), None);
        }
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
        Err(e) => {
            telemetry::request(None, None, e.rsc, start.elapsed());
            return early_error(&echo, &e, None);
        }
    };
    let ser = echo.accept;
    let (op, ty) = (req.op, req.ty);
    let resp = app.cse.handle(req, &ctx).await;
    telemetry::request(Some(op), ty, resp.rsc, start.elapsed());
    let (status, headers, body) = mapping::from_primitive(&resp, ser);
    build(status, headers, body)
}

async fn upper_tester_cmd(State(app): State<Arc<App>>, headers: HeaderMap) -> axum::response::Response {
    let echo = mapping::echo_of(&headers);
    let cmd = headers.get(&X_M2M_UTCMD).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match app.cse.upper_tester(cmd).await {
        Ok(reply) => {
            let mut resp = Response::new(reply.rsc, echo.rqi.clone());
            resp.rvi = echo.rvi.clone();
            let (status, mut h, body) = mapping::from_primitive(&resp, Serialization::Json);
            if let Some(v) = reply.utrsp.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
                h.insert(X_M2M_UTRSP, v);
            }
            build(status, h, body)
        }
        Err(e) => early_error(&echo, &e, None),
    }
}
