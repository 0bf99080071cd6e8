//! A client of the registry API, for the CLI and the CSE.
//!
//! Signed answers come back as [`Signed`]: the exact body bytes, the `Warden-Signature` header and
//! the parsed value together, so that a cache can keep all three and verify them again later,
//! offline, with [`Signed::verify`]. Every request has a timeout; proxies from the environment are
//! ignored (the registry is addressed directly).

use std::time::Duration;

use appid::{
    ApiError, ChangesPage, ImportResponse, KeySet, ListPage, LookupRequest, LookupResponse, Record, Role,
    RotateResponse, SignatureError, Status, StatusRequest, TokenRequest, TokenResponse,
};
use bytes::Bytes;
use onem2m::AppId;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Time to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, except long-polls and imports.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for one import request (a large body, one transaction).
const IMPORT_TIMEOUT: Duration = Duration::from_secs(300);

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the registry: {0}")]
    Transport(String),
    #[error("the registry answered {status}: {error}")]
    Api { status: u16, error: ApiError },
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
    #[error("invalid registry URL {0:?}")]
    Url(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's Display omits the cause ("error sending request"); show the chain.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        ClientError::Transport(msg)
    }
}

/// A signed answer: the body exactly as received, its signature header, and the parsed value.
#[derive(Debug, Clone)]
pub struct Signed<T> {
    pub body: Bytes,
    pub signature: String,
    pub value: T,
    /// The `ETag`, when the answer had one.
    pub etag: Option<String>,
}

impl<T> Signed<T> {
    /// Checks the signature over the body with `keys`.
    pub fn verify(&self, keys: &KeySet) -> Result<(), SignatureError> {
        keys.verify(&self.body, &self.signature)
    }
}

/// Filters of `GET /v1/app-ids`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub class: Option<String>,
    pub app_type: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// A registry client. Cheap to clone (connections are pooled and shared).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Percent-encodes one path segment (AE-IDs and patterns may hold `/`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'*') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    /// A client of the registry at `base_url` (e.g. `http://127.0.0.1:7070`), sending `token` as
    /// a bearer token when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|_| ClientError::Url(base_url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::Url(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { http, base, token })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    fn json_request<B: Serialize>(&self, method: Method, path: &str, body: &B) -> Result<RequestBuilder, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(self.raw_request(method, path, Bytes::from(bytes)))
    }

    fn raw_request(&self, method: Method, path: &str, body: Bytes) -> RequestBuilder {
        self.request(method, path).header(header::CONTENT_TYPE, "application/json").body(body)
    }

    /// Sends, and turns an error status into [`ClientError::Api`].
    async fn send(rb: RequestBuilder) -> Result<(StatusCode, header::HeaderMap, Bytes), ClientError> {
        let resp = rb.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ApiError>(&body).unwrap_or_else(|_| ApiError {
                error: "http".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
                field: None,
            });
            return Err(ClientError::Api { status: status.as_u16(), error });
        }
        Ok((status, headers, body))
    }

    async fn call<T: DeserializeOwned>(rb: RequestBuilder) -> Result<T, ClientError> {
        let (_, _, body) = Self::send(rb).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn signed<T: DeserializeOwned>(rb: RequestBuilder) -> Result<Signed<T>, ClientError> {
        let (_, headers, body) = Self::send(rb).await?;
        let signature = headers
            .get(appid::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("the answer is not signed".into()))?
            .to_owned();
        let etag = headers.get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let value = serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Signed { body, signature, value, etag })
    }

    /// `POST /v1/lookup`.
    pub async fn lookup(&self, app_id: &AppId, ae_id: Option<&str>) -> Result<Signed<LookupResponse>, ClientError> {
        let req = LookupRequest { app_id: app_id.clone(), ae_id: ae_id.map(str::to_owned) };
        Self::signed(self.json_request(Method::POST, "/v1/lookup", &req)?).await
    }

    /// `GET /v1/app-ids/{appId}` (a 404 is [`ClientError::is_not_found`]).
    pub async fn get(&self, app_id: &AppId) -> Result<Signed<Record>, ClientError> {
        Self::signed(self.request(Method::GET, &format!("/v1/app-ids/{}", segment(app_id.as_str())))).await
    }

    /// `GET /v1/keys`.
    pub async fn keys(&self) -> Result<KeySet, ClientError> {
        Self::call(self.request(Method::GET, "/v1/keys")).await
    }

    /// `GET /v1/changes`: the changes after `after` (or, without it, just the head), waiting up to
    /// `wait` for one.
    pub async fn changes(&self, after: Option<u64>, wait: Duration) -> Result<ChangesPage, ClientError> {
        let mut path = format!("/v1/changes?wait={}", wait.as_secs());
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        Self::call(self.request(Method::GET, &path).timeout(wait + REQUEST_TIMEOUT)).await
    }

    /// `GET /v1/app-ids` (one page; follow `next` with `filter.cursor`).
    pub async fn list(&self, filter: &ListFilter) -> Result<ListPage, ClientError> {
        let limit = filter.limit.map(|l| l.to_string());
        let pairs = [
            ("class", filter.class.as_deref()),
            ("type", filter.app_type.as_deref()),
            ("status", filter.status.as_deref()),
            ("q", filter.q.as_deref()),
            ("cursor", filter.cursor.as_deref()),
            ("limit", limit.as_deref()),
        ];
        let query: Vec<String> = pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", segment(v)))).collect();
        let path = if query.is_empty() { "/v1/app-ids".to_owned() } else { format!("/v1/app-ids?{}", query.join("&")) };
        Self::call(self.request(Method::GET, &path)).await
    }

    /// `POST /v1/app-ids` with a profile as JSON bytes (sent as is, so the registry's validation
    /// speaks about the caller's own text).
    pub async fn create_json(&self, profile: Bytes) -> Result<Record, ClientError> {
        Self::call(self.raw_request(Method::POST, "/v1/app-ids", profile)).await
    }

    /// `PUT /v1/app-ids/{appId}` with `If-Match` (an ETag such as `"3"`, or `*`).
    pub async fn replace_json(&self, app_id: &AppId, profile: Bytes, if_match: &str) -> Result<Record, ClientError> {
        let rb = self
            .raw_request(Method::PUT, &format!("/v1/app-ids/{}", segment(app_id.as_str())), profile)
            .header(header::IF_MATCH, if_match);
        Self::call(rb).await
    }

    /// `POST /v1/app-ids/{appId}/status`.
    pub async fn set_status(&self, app_id: &AppId, status: Status, reason: &str) -> Result<Record, ClientError> {
        let body = StatusRequest { status, reason: reason.to_owned() };
        Self::call(self.json_request(
            Method::POST,
            &format!("/v1/app-ids/{}/status", segment(app_id.as_str())),
            &body,
        )?)
        .await
    }

    /// `PUT /v1/app-ids/{appId}/devices/{aeId}`.
    pub async fn deny_device(&self, app_id: &AppId, ae_id: &str, reason: &str) -> Result<Record, ClientError> {
        let path = format!("/v1/app-ids/{}/devices/{}", segment(app_id.as_str()), segment(ae_id));
        let body = appid::DeviceRequest { reason: Some(reason.to_owned()) };
        Self::call(self.json_request(Method::PUT, &path, &body)?).await
    }

    /// `DELETE /v1/app-ids/{appId}/devices/{aeId}`.
    pub async fn allow_device(&self, app_id: &AppId, ae_id: &str, reason: Option<&str>) -> Result<Record, ClientError> {
        let path = format!("/v1/app-ids/{}/devices/{}", segment(app_id.as_str()), segment(ae_id));
        let body = appid::DeviceRequest { reason: reason.map(str::to_owned) };
        Self::call(self.json_request(Method::DELETE, &path, &body)?).await
    }

    /// `POST /v1/import` with NDJSON lines (one transaction: all or nothing).
    pub async fn import_ndjson(&self, lines: Bytes) -> Result<ImportResponse, ClientError> {
        let rb = self
            .request(Method::POST, "/v1/import")
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .timeout(IMPORT_TIMEOUT)
            .body(lines);
        Self::call(rb).await
    }

    /// `POST /v1/tokens`.
    pub async fn mint_token(&self, role: Role) -> Result<TokenResponse, ClientError> {
        Self::call(self.json_request(Method::POST, "/v1/tokens", &TokenRequest { role })?).await
    }

    /// `POST /v1/keys/rotate`.
    pub async fn rotate_key(&self) -> Result<RotateResponse, ClientError> {
        Self::call(self.request(Method::POST, "/v1/keys/rotate")).await
    }

    /// `DELETE /v1/keys/{kid}`: the keys that remain.
    pub async fn retire_key(&self, kid: &str) -> Result<KeySet, ClientError> {
        Self::call(self.request(Method::DELETE, &format!("/v1/keys/{}", segment(kid)))).await
    }

    /// `GET /healthz`.
    pub async fn healthy(&self) -> Result<(), ClientError> {
        Self::send(self.request(Method::GET, "/healthz")).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("Ra.b.c"), "Ra.b.c");
        assert_eq!(segment("/id-in/C1"), "%2Fid-in%2FC1");
        assert_eq!(segment("S-stolen-*"), "S-stolen-*");
        assert_eq!(segment("a b"), "a%20b");
    }

    #[test]
    fn urls_are_checked() {
        assert!(RegistryClient::new("http://127.0.0.1:7070/", None).is_ok());
        assert_eq!(RegistryClient::new("http://127.0.0.1:7070/", None).unwrap().base_url(), "http://127.0.0.1:7070");
        for bad in ["127.0.0.1:7070", "ftp://x", "not a url", ""] {
            assert!(matches!(RegistryClient::new(bad, None), Err(ClientError::Url(_))), "{bad}");
        }
    }
}
