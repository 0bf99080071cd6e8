//! The HTTP API of DESIGN.md §6: routes, handlers, and extractors whose every rejection is the API's
//! JSON error (never axum's plain-text ones).
//!
//! Bodies are read here, bounded in size (`Content-Length` checked first, then the stream) and in
//! time, and only after the token was checked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use appid::{DeviceRequest, LookupRequest, Role, RotateResponse, StatusRequest, TokenRequest};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use onem2m::AppId;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::cache::SignedBody;
use crate::failure::ApiFailure;
use crate::service::{IfMatch, Registry, decode_cursor};
use crate::store::{ListQuery, StoredRecord};
use crate::telemetry;

/// The OpenAPI 3 description of every route.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// Builds the router and the table of its routes from one list, so that the table cannot drift
/// from what is served (the OpenAPI test compares the table with `openapi.json`).
macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr),* $(,)?) => {{
        let table: &'static [(&'static str, &'static str)] = &[$((stringify!($method), $path)),*];
        let router: Router<Registry> = Router::new()$(.route($path, on(MethodFilter::$method, $handler)))*;
        (router, table)
    }};
}

fn routes() -> (Router<Registry>, &'static [(&'static str, &'static str)]) {
    routes! {
        POST "/v1/lookup" => lookup,
        GET "/v1/app-ids" => list,
        POST "/v1/app-ids" => create,
        GET "/v1/app-ids/{appId}" => get_one,
        PUT "/v1/app-ids/{appId}" => replace,
        POST "/v1/app-ids/{appId}/status" => set_status,
        PUT "/v1/app-ids/{appId}/devices/{aeId}" => deny_device,
        DELETE "/v1/app-ids/{appId}/devices/{aeId}" => allow_device,
        GET "/v1/changes" => changes,
        POST "/v1/import" => import,
        POST "/v1/tokens" => mint_token,
        GET "/v1/keys" => keys,
        POST "/v1/keys/rotate" => rotate_key,
        DELETE "/v1/keys/{kid}" => retire_key,
        GET "/v1/openapi.json" => openapi,
        GET "/healthz" => healthz,
        GET "/metrics" => metrics_text,
    }
}

/// Every `(METHOD, path)` the router serves.
pub fn route_table() -> &'static [(&'static str, &'static str)] {
    routes().1
}

/// The router over `registry`.
pub(crate) fn router(registry: Registry) -> Router {
    let (router, _) = routes();
    router
        .route_layer(axum::middleware::from_fn(track))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(registry)
}

/// Counts and times every routed request.
async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(String::new, |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(telemetry::HTTP_DURATION, "route" => route.clone()).record(start.elapsed().as_secs_f64());
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    resp
}

async fn no_route() -> ApiFailure {
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => "none", "method" => "", "status" => "404").increment(1);
    ApiFailure::not_found("no such route; see GET /v1/openapi.json")
}

async fn wrong_method() -> ApiFailure {
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => "none", "method" => "", "status" => "405").increment(1);
    ApiFailure::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

// ---- extractors --------------------------------------------------------------------------------

/// The path parameters, percent-decoded.
struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiFailure;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiFailure> {
        Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(m)| Params(m))
            .map_err(|e| ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))
    }
}

impl Params {
    fn get(&self, name: &str) -> Result<&str, ApiFailure> {
        self.0.get(name).map(String::as_str).ok_or_else(ApiFailure::internal)
    }

    fn app_id(&self) -> Result<AppId, ApiFailure> {
        let raw = self.get("appId")?;
        AppId::parse(raw).map_err(|e| ApiFailure::bad_request("appId", e.to_string()))
    }
}

/// The query string as `T` (whose fields are all strings, checked by the handler).
struct Q<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiFailure;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiFailure> {
        Query::<T>::try_from_uri(&parts.uri).map(|Query(t)| Q(t)).map_err(|e| {
            let text = e.body_text();
            let field = text.split("field `").nth(1).and_then(|r| r.split('`').next()).map(str::to_owned);
            let code = if text.contains("unknown field") { "unknown_field" } else { "invalid_query" };
            ApiFailure { status: StatusCode::BAD_REQUEST, code, message: text, field }
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    NdJson,
}

/// Reads a request body of at most `limit` bytes within the body timeout.
async fn read_body(
    reg: &Registry,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    media: Media,
) -> Result<Bytes, ApiFailure> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let ok = match media {
            Media::Json => ct == "application/json",
            Media::NdJson => matches!(
                ct.as_str(),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/json" | "text/plain"
            ),
        };
        if !ok {
            return Err(ApiFailure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send {}", if media == Media::Json { "application/json" } else { "application/x-ndjson" }),
            )
            .with_field("Content-Type"));
        }
    }
    let too_large = || {
        ApiFailure::body(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is over {limit} bytes"))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = reg.limits().body_read_timeout;
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiFailure::body(StatusCode::REQUEST_TIMEOUT, "timeout", "the body took too long to arrive")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiFailure::body(StatusCode::BAD_REQUEST, "invalid_body", "the body could not be read")),
    }
}

async fn json_body<T: DeserializeOwned>(reg: &Registry, headers: &HeaderMap, body: Body) -> Result<T, ApiFailure> {
    let bytes = read_body(reg, headers, body, reg.limits().body_bytes, Media::Json).await?;
    Ok(appid::profile::from_json::<T>(&bytes)?)
}

/// Like [`json_body`], but an empty body is `T::default()`.
async fn optional_json_body<T: DeserializeOwned + Default>(
    reg: &Registry,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiFailure> {
    let bytes = read_body(reg, headers, body, reg.limits().body_bytes, Media::Json).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    Ok(appid::profile::from_json::<T>(&bytes)?)
}

// ---- responses ---------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn value_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(v) => json_response(status, Bytes::from(v)),
        Err(_) => ApiFailure::internal().into_response(),
    }
}

fn etag_value(version: u64) -> HeaderValue {
    HeaderValue::from_str(&appid::profile::etag(version)).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn signed_response(signed: SignedBody, etag: bool) -> Response {
    let mut resp = json_response(StatusCode::OK, signed.body);
    resp.headers_mut().insert(appid::SIGNATURE_HEADER, signed.signature);
    if etag {
        resp.headers_mut().insert(header::ETAG, etag_value(signed.version));
    }
    resp
}

fn record_response(status: StatusCode, record: StoredRecord) -> Response {
    let location = format!("/v1/app-ids/{}", record.app_id);
    let mut resp = json_response(status, record.json);
    resp.headers_mut().insert(header::ETAG, etag_value(record.version));
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&location)
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

// ---- handlers ----------------------------------------------------------------------------------

type Result<T, E = ApiFailure> = std::result::Result<T, E>;

async fn lookup(State(reg): State<Registry>, headers: HeaderMap, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Read)?;
    let req: LookupRequest = json_body(&reg, &headers, body).await?;
    req.validate()?;
    Ok(signed_response(reg.lookup(&req).await?, false))
}

async fn get_one(State(reg): State<Registry>, headers: HeaderMap, params: Params) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Read)?;
    let app_id = params.app_id()?;
    let signed = reg.get(&app_id).await?;
    if let Some(inm) = headers.get(header::IF_NONE_MATCH)
        && inm.as_bytes() == appid::profile::etag(signed.version).as_bytes()
    {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().insert(header::ETAG, etag_value(signed.version));
        return Ok(resp);
    }
    Ok(signed_response(signed, true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    class: Option<String>,
    #[serde(rename = "type")]
    app_type: Option<String>,
    status: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

async fn list(State(reg): State<Registry>, headers: HeaderMap, Q(p): Q<ListParams>) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let class =
        match nonempty(p.class) {
            Some(c) => Some(appid::AppClass::parse(&c).ok_or_else(|| {
                ApiFailure::bad_request("class", "one of consumer, industrial, critical-infrastructure")
            })?),
            None => None,
        };
    let status = match nonempty(p.status) {
        Some(s) => Some(
            appid::Status::parse(&s)
                .ok_or_else(|| ApiFailure::bad_request("status", "one of active, suspended, revoked"))?,
        ),
        None => None,
    };
    let limit = match nonempty(p.limit) {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| ApiFailure::bad_request("limit", "a positive integer"))?,
        None => 100,
    };
    let q = nonempty(p.q);
    if q.as_ref().is_some_and(|q| q.chars().count() > 256) {
        return Err(ApiFailure::bad_request("q", "at most 256 characters"));
    }
    let after = nonempty(p.cursor).map(|c| decode_cursor(&c)).transpose()?;
    let page = reg.list(ListQuery { class, app_type: nonempty(p.app_type), status, q, after, limit }).await?;
    Ok(json_response(StatusCode::OK, page.0))
}

async fn create(State(reg): State<Registry>, headers: HeaderMap, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let bytes = read_body(&reg, &headers, body, reg.limits().body_bytes, Media::Json).await?;
    let draft = appid::parse_draft(&bytes)?;
    Ok(record_response(StatusCode::CREATED, reg.create(draft).await?))
}

fn if_match(headers: &HeaderMap) -> Result<IfMatch> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Err(ApiFailure::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "send If-Match with the ETag of the version you edited (or * to overwrite any version)",
        )
        .with_field("If-Match"));
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(IfMatch::Any);
    }
    let digits = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s);
    // Not an ETag this registry gives out: a malformed header (400), not a stale version (412).
    digits
        .parse::<u64>()
        .map(IfMatch::Version)
        .map_err(|_| ApiFailure::bad_request("If-Match", format!("{s:?} is not an ETag: send one such as \"3\", or *")))
}

async fn replace(State(reg): State<Registry>, headers: HeaderMap, params: Params, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let app_id = params.app_id()?;
    let precondition = if_match(&headers)?;
    let bytes = read_body(&reg, &headers, body, reg.limits().body_bytes, Media::Json).await?;
    let mut draft: appid::Draft = appid::profile::from_json(&bytes)?;
    // The App-ID comes from the path; the draft may repeat it.
    let named = draft.app_id.get_or_insert_with(|| app_id.clone()).clone();
    draft.validate()?;
    if named != app_id {
        return Err(ApiFailure::bad_request("appId", "does not match the App-ID in the path"));
    }
    Ok(record_response(StatusCode::OK, reg.replace(&app_id, draft, precondition).await?))
}

async fn set_status(State(reg): State<Registry>, headers: HeaderMap, params: Params, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let app_id = params.app_id()?;
    let req: StatusRequest = json_body(&reg, &headers, body).await?;
    Ok(record_response(StatusCode::OK, reg.set_status(&app_id, req.status, req.reason).await?))
}

async fn deny_device(State(reg): State<Registry>, headers: HeaderMap, params: Params, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let app_id = params.app_id()?;
    let pattern = params.get("aeId")?.to_owned();
    let req: DeviceRequest = json_body(&reg, &headers, body).await?;
    let reason = req.reason.ok_or_else(|| ApiFailure::from(appid::FieldError::missing("reason", "give a reason")))?;
    Ok(record_response(StatusCode::OK, reg.deny_device(&app_id, pattern, reason).await?))
}

async fn allow_device(State(reg): State<Registry>, headers: HeaderMap, params: Params, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let app_id = params.app_id()?;
    let pattern = params.get("aeId")?.to_owned();
    let req: DeviceRequest = optional_json_body(&reg, &headers, body).await?;
    Ok(record_response(StatusCode::OK, reg.allow_device(&app_id, pattern, req.reason).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesParams {
    after: Option<String>,
    wait: Option<String>,
    limit: Option<String>,
}

async fn changes(State(reg): State<Registry>, headers: HeaderMap, Q(p): Q<ChangesParams>) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Read)?;
    let number = |field: &str, v: Option<String>| -> Result<Option<u64>> {
        nonempty(v)
            .map(|s| s.parse::<u64>().map_err(|_| ApiFailure::bad_request(field, "a non-negative integer")))
            .transpose()
    };
    let after = number("after", p.after)?;
    let wait = Duration::from_secs(number("wait", p.wait)?.unwrap_or(0));
    let limit = u32::try_from(number("limit", p.limit)?.unwrap_or(u64::MAX)).unwrap_or(u32::MAX);
    let page = reg.changes(after, wait, limit).await?;
    Ok(value_response(StatusCode::OK, &page))
}

async fn import(State(reg): State<Registry>, headers: HeaderMap, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let bytes = read_body(&reg, &headers, body, reg.limits().import_bytes, Media::NdJson).await?;
    Ok(value_response(StatusCode::OK, &reg.import(bytes).await?))
}

async fn mint_token(State(reg): State<Registry>, headers: HeaderMap, body: Body) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let req: TokenRequest = json_body(&reg, &headers, body).await?;
    let mut resp = value_response(StatusCode::CREATED, &reg.mint_token(req.role).await?);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn keys(State(reg): State<Registry>) -> Response {
    value_response(StatusCode::OK, &reg.key_set())
}

async fn rotate_key(State(reg): State<Registry>, headers: HeaderMap) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    let kid = reg.rotate_key().await?;
    Ok(value_response(StatusCode::OK, &RotateResponse { kid }))
}

async fn retire_key(State(reg): State<Registry>, headers: HeaderMap, params: Params) -> Result<Response> {
    reg.authorize(headers.get(header::AUTHORIZATION), Role::Admin)?;
    reg.retire_key(params.get("kid")?).await?;
    Ok(value_response(StatusCode::OK, &reg.key_set()))
}

async fn openapi() -> Response {
    json_response(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()))
}

async fn healthz(State(reg): State<Registry>) -> Response {
    if reg.healthy().await {
        json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
    } else {
        ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", "the store does not answer").into_response()
    }
}

async fn metrics_text(State(reg): State<Registry>) -> Response {
    let mut resp = Response::new(Body::from(reg.inner.metrics.render()));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}
