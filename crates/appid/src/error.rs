//! Why a profile or a request body was refused, naming the failing field.

use std::fmt;

/// The field name of errors about the request body as a whole (malformed JSON, a body that is not
/// an object, a body that is too large).
pub const BODY: &str = "body";

/// What kind of mistake a [`FieldError`] reports; maps to the API's `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// Not JSON at all, or trailing garbage.
    Syntax,
    /// A field that the type does not have.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A field with a wrong type or value.
    Invalid,
}

impl FieldErrorKind {
    /// The API error code (`error` in `{"error", "message", "field"}`).
    pub fn code(self) -> &'static str {
        match self {
            FieldErrorKind::Syntax => "invalid_json",
            FieldErrorKind::UnknownField => "unknown_field",
            FieldErrorKind::MissingField => "missing_field",
            FieldErrorKind::Invalid => "invalid_field",
        }
    }
}

/// A refused input: its kind, the path of the field (`application.class`,
/// `authentication.roots[0].pem`, `bogusField`) when there is one, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Invalid, field: Some(field.to_owned()), message: message.into() }
    }

    pub fn missing(field: &str, message: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::MissingField, field: Some(field.to_owned()), message: message.into() }
    }

    /// Malformed JSON, at `field`: the path of the value being read when it broke, or `body` when
    /// that was the document itself.
    pub fn syntax(e: &serde_json::Error, field: &str) -> Self {
        Self { kind: FieldErrorKind::Syntax, field: Some(field.to_owned()), message: format!("malformed JSON: {e}") }
    }

    /// Maps serde's error and the path it happened at to the field that failed. serde reports an
    /// unknown or missing field at the path of the object that holds it; the field is appended.
    pub fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        // serde_path_to_error writes `?` for a key it could not read; the field is its parent.
        let path = e.path().to_string();
        let path = match path.strip_suffix('?') {
            Some(parent) => parent.strip_suffix('.').unwrap_or(parent).to_owned(),
            None => path,
        };
        let inner = e.into_inner();
        let root = path == "." || path.is_empty();
        if matches!(inner.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof) {
            return Self::syntax(&inner, if root { BODY } else { &path });
        }
        let msg = inner.to_string();
        // serde_json appends " at line L column C"; the path says more.
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_owned(),
            None => msg,
        };
        // The path may already end in the field (unknown fields) or stop at its parent (missing ones).
        let join = |name: &str| {
            if root {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.clone()
            } else {
                format!("{path}.{name}")
            }
        };
        if let Some(name) = backticked(&msg, "unknown field `") {
            let field = join(name);
            return Self {
                kind: FieldErrorKind::UnknownField,
                message: format!("unknown field {field:?}"),
                field: Some(field),
            };
        }
        if let Some(name) = backticked(&msg, "missing field `") {
            let field = join(name);
            return Self {
                kind: FieldErrorKind::MissingField,
                message: format!("missing field {field:?}"),
                field: Some(field),
            };
        }
        // A wrong value at the top (an array instead of an object) is the body's fault.
        let field = if root { BODY.to_owned() } else { path };
        let message = format!("{field}: {msg}");
        Self { kind: FieldErrorKind::Invalid, field: Some(field), message }
    }
}

/// The name between `prefix` and the next backtick, if `msg` starts with `prefix`.
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    rest.find('`').map(|end| &rest[..end])
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}
