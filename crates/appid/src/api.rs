//! The registry API's request and response bodies (DESIGN.md §6), shared by the server and its clients.

use onem2m::{AeId, AppId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::profile::{Record, Status, limits};

/// `POST /v1/lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LookupRequest {
    pub app_id: AppId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ae_id: Option<String>,
}

impl LookupRequest {
    /// `aeId`, when given, must be an AE-ID in one of its three forms.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(ae) = &self.ae_id {
            AeId::parse(ae).map_err(|e| FieldError::invalid("aeId", e.to_string()))?;
        }
        Ok(())
    }
}

/// Whether the device may connect as far as the App-ID's deny list goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Allowed,
    Denied,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Allowed => "allowed",
            DeviceStatus::Denied => "denied",
        }
    }
}

/// The answer to a lookup. An unknown App-ID is `registered: false` without a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LookupResponse {
    pub app_id: AppId,
    pub ae_id: Option<String>,
    pub registered: bool,
    pub device_status: DeviceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

/// The lookup body built from a record's stored JSON without parsing it again: byte for byte what
/// `serde_json::to_vec(&LookupResponse)` gives for the same values.
pub fn lookup_body(
    app_id: &AppId,
    ae_id: Option<&str>,
    device_status: DeviceStatus,
    record_json: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + record_json.map_or(0, <[u8]>::len));
    out.extend_from_slice(b"{\"appId\":");
    push_json_str(&mut out, app_id.as_str());
    out.extend_from_slice(b",\"aeId\":");
    match ae_id {
        Some(ae) => push_json_str(&mut out, ae),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if record_json.is_some() { b",\"registered\":true" } else { b",\"registered\":false" });
    out.extend_from_slice(b",\"deviceStatus\":\"");
    out.extend_from_slice(device_status.as_str().as_bytes());
    out.push(b'"');
    if let Some(r) = record_json {
        out.extend_from_slice(b",\"record\":");
        out.extend_from_slice(r);
    }
    out.push(b'}');
    out
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// What a change did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Registered (create, issue or import).
    Created,
    /// A new version of the profile (`PUT`).
    Updated,
    /// Suspended, revoked or reactivated.
    Status,
    /// A device deny entry was added.
    DeviceDenied,
    /// A device deny entry was removed.
    DeviceAllowed,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 5] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Status,
        ChangeKind::DeviceDenied,
        ChangeKind::DeviceAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Status => "status",
            ChangeKind::DeviceDenied => "device-denied",
            ChangeKind::DeviceAllowed => "device-allowed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the change feed: every change gets the next sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    pub seq: u64,
    pub app_id: AppId,
    pub kind: ChangeKind,
    /// The record's status after the change.
    pub status: Status,
    pub at: Timestamp,
}

/// `GET /v1/changes`: the changes after `after`, oldest first, and `last`, the value to pass as
/// `after` next time (the last change's `seq`, or the feed's head when there are none — a `last`
/// below the `after` you sent means the feed was reset and your cache must be dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangesPage {
    pub changes: Vec<Change>,
    pub last: u64,
}

/// Every error answer: `{"error": code, "message": text, "field": path}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiError {
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self { error: e.kind.code().to_owned(), message: e.message, field: e.field }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.error)?;
        if let Some(field) = &self.field {
            write!(f, " [field {field}]")?;
        }
        Ok(())
    }
}

/// `GET /v1/app-ids`: one page of records, and the cursor of the next page (absent on the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPage {
    pub items: Vec<Record>,
    pub next: Option<String>,
}

/// `POST /v1/app-ids/{appId}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusRequest {
    pub status: Status,
    pub reason: String,
}

/// `PUT` (reason required) and `DELETE` (reason optional) `/v1/app-ids/{appId}/devices/{aeId}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Checks an audit reason: 1–256 characters, no control characters.
pub fn check_reason(reason: &str) -> Result<(), FieldError> {
    if reason.trim().is_empty() {
        return Err(FieldError::missing("reason", "give a reason"));
    }
    if reason.chars().count() > limits::TEXT || reason.chars().any(char::is_control) {
        return Err(FieldError::invalid("reason", "at most 256 characters, without control characters"));
    }
    Ok(())
}

/// `POST /v1/import`: how many profiles were registered, and how many were registered already with
/// exactly the record the line describes (so a rerun of an interrupted import converges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportResponse {
    pub imported: u64,
    #[serde(default)]
    pub unchanged: u64,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Lookups, single records and the change feed.
    Read,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub role: Role,
}

/// The minted token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenResponse {
    pub token: String,
    pub role: Role,
}

/// `POST /v1/keys/rotate`: the new signing key's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateResponse {
    pub kid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_body_is_what_serde_writes() {
        let app = AppId::parse("Racme.com.x.y").unwrap();
        let record = crate::profile::tests::sample_record();
        let json = record.to_json();
        for (ae, status, rec) in [
            (Some("Cdev\u{1}1"), DeviceStatus::Allowed, Some(&record)),
            (None, DeviceStatus::Denied, Some(&record)),
            (Some("S1"), DeviceStatus::Allowed, None),
        ] {
            let want = LookupResponse {
                app_id: app.clone(),
                ae_id: ae.map(str::to_owned),
                registered: rec.is_some(),
                device_status: status,
                record: rec.cloned(),
            };
            let got = lookup_body(&app, ae, status, rec.map(|_| json.as_slice()));
            assert_eq!(
                String::from_utf8(got.clone()).unwrap(),
                String::from_utf8(serde_json::to_vec(&want).unwrap()).unwrap()
            );
            assert_eq!(serde_json::from_slice::<LookupResponse>(&got).unwrap(), want);
        }
    }

    #[test]
    fn lookup_request() {
        let r: LookupRequest = serde_json::from_str(r#"{"appId":"Ra.b.c","aeId":"Cdev"}"#).unwrap();
        assert!(r.validate().is_ok());
        let r: LookupRequest = serde_json::from_str(r#"{"appId":"Ra.b.c","aeId":"bad id"}"#).unwrap();
        assert_eq!(r.validate().unwrap_err().field.as_deref(), Some("aeId"));
        let e = crate::profile::from_json::<LookupRequest>(br#"{"appId":"Xwrong"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("appId"));
        let e = crate::profile::from_json::<LookupRequest>(br#"{"appId":"Ra.b.c","x":1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("x"));
    }

    #[test]
    fn shapes() {
        let c = Change {
            seq: 7,
            app_id: AppId::parse("Ra.b.c").unwrap(),
            kind: ChangeKind::DeviceDenied,
            status: Status::Revoked,
            at: Timestamp::from_secs(0),
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"seq": 7, "appId": "Ra.b.c", "kind": "device-denied", "status": "revoked", "at": "19700101T000000,000000"})
        );
        let e = ApiError { error: "not_found".into(), message: "m".into(), field: None };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": "not_found", "message": "m", "field": null})
        );
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        }
        assert!(check_reason("").is_err());
        assert!(check_reason("stolen").is_ok());
        assert!(check_reason("a\nb").is_err());
    }
}
