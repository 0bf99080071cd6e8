//! The one error type of the registry's API: an HTTP status and the JSON body
//! `{"error": code, "message": text, "field": path}`. Every failure becomes one of these, in one place.

use appid::{ApiError, FieldError};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use crate::auth::AuthError;
use crate::store::StoreError;

/// The field of authentication failures: the header that carries the token.
const AUTHORIZATION: &str = "Authorization";

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiFailure {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(field)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A refusal of the request body as a whole (too large, too slow, unreadable).
    pub fn body(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message).with_field(appid::BODY)
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the registry failed; see its log")
    }

    /// The body as the API's error type.
    pub fn to_api_error(&self) -> ApiError {
        ApiError { error: self.code.to_owned(), message: self.message.clone(), field: self.field.clone() }
    }
}

impl From<FieldError> for ApiFailure {
    fn from(e: FieldError) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: e.kind.code(), message: e.message, field: e.field }
    }
}

impl From<AuthError> for ApiFailure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a valid token as Authorization: Bearer <token>",
            )
            .with_field(AUTHORIZATION),
            AuthError::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden", "this call needs an admin token")
                .with_field(AUTHORIZATION),
        }
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("no such App-ID").with_field("appId"),
            StoreError::Conflict(id) => {
                Self::new(StatusCode::CONFLICT, "conflict", format!("{id} is already registered")).with_field("appId")
            }
            StoreError::VersionMismatch { current } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("the record has changed: its current version is {current} (ETag \"{current}\")"),
            )
            .with_field("If-Match"),
            StoreError::Invalid(fe) => fe.into(),
            StoreError::NoSuchEntry { field, message } => Self::not_found(message).with_field(field),
            StoreError::Backend(why) => {
                tracing::error!(error = %why, "storage failure");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_api_error()).unwrap_or_default();
        let mut resp = Response::new(axum::body::Body::from(Bytes::from(body)));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
