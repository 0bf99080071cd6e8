//! A small oneM2M HTTP client for tests: builds requests with the X-M2M-* headers and returns the
//! response status code, the HTTP status, the headers and the body.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Client, Method};
use serde_json::Value;

static RQI: AtomicU64 = AtomicU64::new(1);

/// A response as a test sees it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `X-M2M-RSC`, 0 when absent.
    pub rsc: u16,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value at a JSON pointer of the body (`/m2m:ae/aei`), or `Null`.
    pub fn at(&self, pointer: &str) -> &Value {
        self.body.pointer(pointer).unwrap_or(&Value::Null)
    }

    /// A string at a JSON pointer, or "".
    pub fn str_at(&self, pointer: &str) -> String {
        self.at(pointer).as_str().unwrap_or_default().to_owned()
    }
}

/// A request under construction.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub origin: Option<String>,
    pub rvi: Option<String>,
    pub ty: Option<u16>,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub raw_body: Option<(String, Vec<u8>)>,
}

impl Req {
    pub fn new(method: Method, path: &str, origin: Option<&str>) -> Self {
        Self {
            method,
            path: path.to_owned(),
            origin: origin.map(str::to_owned),
            rvi: Some("4".into()),
            ty: None,
            body: None,
            headers: Vec::new(),
            raw_body: None,
        }
    }

    pub fn get(path: &str, origin: &str) -> Self {
        Self::new(Method::GET, path, Some(origin))
    }

    pub fn create(path: &str, origin: &str, ty: u16, body: Value) -> Self {
        let mut r = Self::new(Method::POST, path, Some(origin));
        r.ty = Some(ty);
        r.body = Some(body);
        r
    }

    pub fn update(path: &str, origin: &str, body: Value) -> Self {
        let mut r = Self::new(Method::PUT, path, Some(origin));
        r.body = Some(body);
        r
    }

    pub fn delete(path: &str, origin: &str) -> Self {
        Self::new(Method::DELETE, path, Some(origin))
    }

    pub fn rvi(mut self, rvi: Option<&str>) -> Self {
        self.rvi = rvi.map(str::to_owned);
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    /// A body sent as is, with this Content-Type.
    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.raw_body = Some((content_type.to_owned(), body));
        self
    }

    /// Sends to `base` (e.g. `http://127.0.0.1:8080`); panics when no response arrives.
    pub async fn send(&self, client: &Client, base: &str) -> Reply {
        self.try_send(client, base).await.unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.path))
    }

    /// Sends to `base`; an error when no response arrives (e.g. the TLS handshake was refused).
    pub async fn try_send(&self, client: &Client, base: &str) -> Result<Reply, reqwest::Error> {
        let has = |name: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut rb = client.request(self.method.clone(), format!("{base}{}", self.path));
        if !has("X-M2M-RI") {
            rb = rb.header("X-M2M-RI", format!("rqi{}", RQI.fetch_add(1, Ordering::Relaxed)));
        }
        if !has("Accept") {
            rb = rb.header("Accept", "application/json");
        }
        if let Some(o) = &self.origin {
            rb = rb.header("X-M2M-Origin", o);
        }
        if let Some(v) = &self.rvi {
            rb = rb.header("X-M2M-RVI", v);
        }
        if let Some((ct, body)) = &self.raw_body {
            rb = rb.header("Content-Type", ct).body(body.clone());
        } else if let Some(b) = &self.body {
            let ct = match self.ty {
                Some(ty) => format!("application/json;ty={ty}"),
                None => "application/json".into(),
            };
            rb = rb.header("Content-Type", ct).body(serde_json::to_vec(b).expect("json"));
        }
        for (k, v) in &self.headers {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let rsc = headers.get("x-m2m-rsc").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { rsc, status, headers, body })
    }
}

/// A plain HTTP client with timeouts, for tests.
pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}
