//! The App-ID profile of DESIGN.md §5 as Rust types, and the drafts that clients send.
//!
//! A [`Record`] is what the registry stores and serves: the profile plus `appId`, `version`, `status`
//! and `devices`. A [`Draft`] is what a client sends to create (`POST /v1/app-ids`, `POST /v1/import`)
//! or replace (`PUT /v1/app-ids/{appId}`) a profile: the same sections, with the registry-owned fields
//! optional. Every struct rejects unknown fields.
//!
//! Optional fields (everything else is required):
//! - `registrant.contact`;
//! - `security.tlsVersions` (default `[]`: no requirement) and `security.firmwareSigned` (default `false`);
//! - `authentication.roots` (default `[]`, but an `x509` profile needs at least one) and
//!   `authentication.aeIdInCertificate` (default `false`);
//! - `communications.periodSeconds` (required when the class is `periodic`),
//!   `communications.maxRequestsPerMinute` and `communications.maxPayloadBytes` (absent: no limit);
//! - the whole `dataModel` section (default: no ontology, no containers); in it `ontologyRef`, and each
//!   container's `contentInfo` and `schema`;
//! - `dataPrivacy.allowedRecipients` (default `[]`), `dataPrivacy.retentionDays` (absent: no limit),
//!   `dataPrivacy.dataMining` and `dataPrivacy.resale` (default `false`);
//! - `devices` (default: nobody denied).
//!
//! Semantic checks that serde cannot express live in [`Draft::validate`] and [`Record::validate`];
//! [`parse_draft`] and [`parse_record`] do both steps and name the failing field.

use std::collections::HashSet;

use onem2m::{AppId, AppIdKind, ResourceName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FieldError;
use crate::pattern;

/// Whether an App-ID may be admitted. Only `active` can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    #[default]
    Active,
    Suspended,
    Revoked,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Active, Status::Suspended, Status::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `application.class`: chooses the CSE's quotas and policy rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppClass {
    Consumer,
    Industrial,
    CriticalInfrastructure,
}

impl AppClass {
    pub const ALL: [AppClass; 3] = [AppClass::Consumer, AppClass::Industrial, AppClass::CriticalInfrastructure];

    pub fn as_str(self) -> &'static str {
        match self {
            AppClass::Consumer => "consumer",
            AppClass::Industrial => "industrial",
            AppClass::CriticalInfrastructure => "critical-infrastructure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `security.keyStorage`: where the device keeps its private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStorage {
    None,
    Software,
    Tee,
    SecureElement,
    Tpm,
}

/// A TLS protocol version the device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// `authentication.method`: how the AE proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// Mutual TLS with a certificate chaining to one of `roots`.
    X509,
    Psk,
    Oauth2,
    None,
}

/// `communications.class`: the traffic pattern of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommClass {
    /// Sends every `periodSeconds`.
    Periodic,
    /// Sends when something happens.
    EventDriven,
    /// Sends continuously.
    Streaming,
    /// Answers when asked.
    OnDemand,
}

/// A oneM2M protocol binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    Http,
    Mqtt,
    Coap,
    Websocket,
}

/// `dataPrivacy.category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataCategory {
    NonPersonal,
    Personal,
    Sensitive,
}

/// `dataPrivacy.sharing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// With nobody but the AE itself.
    None,
    /// With `allowedRecipients` only.
    Restricted,
    /// With anyone the CSE's policy allows.
    Public,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registrant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Application {
    /// A short product type, e.g. `thermostat`; searchable.
    #[serde(rename = "type")]
    pub app_type: String,
    pub class: AppClass,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Security {
    pub key_storage: KeyStorage,
    #[serde(default)]
    pub tls_versions: Vec<TlsVersion>,
    #[serde(default)]
    pub firmware_signed: bool,
}

/// A root of trust: device certificates of this App-ID chain to one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Root {
    /// The certificate's subject, for people (not checked against the certificate).
    pub subject: String,
    /// Hex SHA-256 of the certificate's DER; must match `pem`.
    pub sha256: String,
    /// One PEM `CERTIFICATE` block.
    pub pem: String,
}

impl Root {
    /// The certificate's DER, after the same checks as validation.
    pub fn der(&self) -> Result<Vec<u8>, &'static str> {
        root_der(&self.pem)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authentication {
    pub method: AuthMethod,
    #[serde(default)]
    pub roots: Vec<Root>,
    #[serde(default)]
    pub ae_id_in_certificate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Communications {
    pub class: CommClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_bytes: Option<u64>,
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// The container's resource name.
    pub name: String,
    /// The `cnf` its content instances carry, e.g. `application/json:0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_info: Option<String>,
    /// A JSON Schema (an object or a boolean) that every content instance must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ontology_ref: Option<String>,
    #[serde(default)]
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataPrivacy {
    pub category: DataCategory,
    pub sharing: Sharing,
    /// Originator patterns (`*` wildcard) that may receive the data when `sharing` is `restricted`.
    #[serde(default)]
    pub allowed_recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub data_mining: bool,
    #[serde(default)]
    pub resale: bool,
}

/// The per-device deny list: AE-IDs or patterns with `*` (see [`crate::pattern`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub denied: Vec<String>,
}

/// The stored and served record of one App-ID (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    pub app_id: AppId,
    /// 1 on create, +1 on each change; the registry's `ETag`.
    pub version: u64,
    pub status: Status,
    pub registrant: Registrant,
    pub application: Application,
    pub security: Security,
    pub authentication: Authentication,
    pub communications: Communications,
    #[serde(default)]
    pub data_model: DataModel,
    pub data_privacy: DataPrivacy,
    #[serde(default)]
    pub devices: Devices,
}

/// Ask the registry to issue the App-ID `R{authority}.{reverseDns}.{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Issue {
    pub authority: String,
    pub reverse_dns: String,
    pub name: String,
}

impl Issue {
    /// The App-ID this asks for.
    pub fn app_id(&self) -> Result<AppId, FieldError> {
        AppId::registered(&self.authority, &self.reverse_dns, &self.name)
            .map_err(|e| FieldError::invalid("issue", format!("cannot issue an App-ID: {}", e.reason)))
    }
}

/// A profile as a client sends it: the registry-owned fields are optional.
///
/// - `appId`: required, except on a create that carries `issue` instead (not both).
/// - `version`: set by the registry. On create it is ignored; on `PUT` it must equal the `If-Match` version.
/// - `status`: on create, the initial status (default `active`); on `PUT` it must be absent or unchanged
///   (status changes go through `POST /v1/app-ids/{appId}/status`).
/// - `devices`: on create, the initial deny list; on `PUT` absent or unchanged (it has its own calls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Draft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<AppId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<Issue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    pub registrant: Registrant,
    pub application: Application,
    pub security: Security,
    pub authentication: Authentication,
    pub communications: Communications,
    #[serde(default)]
    pub data_model: DataModel,
    pub data_privacy: DataPrivacy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Devices>,
}

/// Bounds on what one profile may hold, so that a record stays small and cheap to serve.
pub mod limits {
    /// Longest free-text field (names, contact, subject, ontology reference, reasons).
    pub const TEXT: usize = 256;
    /// Longest `application.type`.
    pub const TYPE: usize = 64;
    /// Most roots of trust per App-ID.
    pub const ROOTS: usize = 16;
    /// Longest PEM of one root.
    pub const PEM: usize = 16 * 1024;
    /// Most containers in the data model.
    pub const CONTAINERS: usize = 64;
    /// Largest JSON Schema of one container, serialised.
    pub const SCHEMA_BYTES: usize = 64 * 1024;
    /// Deepest nesting of a JSON Schema.
    pub const SCHEMA_DEPTH: usize = 32;
    /// Most entries in a list of patterns (deny list, recipients).
    pub const PATTERNS: usize = 1024;
}

fn text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldError::invalid(field, format!("must have at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// The checks of a registered App-ID that [`AppId::parse`] does not make.
pub fn check_registered(app_id: &AppId) -> Result<(), FieldError> {
    if app_id.kind() != AppIdKind::Registered {
        return Err(FieldError::invalid(
            "appId",
            format!(
                "{app_id:?} is not a registered App-ID: the registry keeps R{{authority}}.{{reverseDns}}.{{name}} only"
            ),
        ));
    }
    Ok(())
}

/// Decodes one PEM `CERTIFICATE` block and checks that it holds an X.509 certificate.
fn root_der(pem: &str) -> Result<Vec<u8>, &'static str> {
    if pem.len() > limits::PEM {
        return Err("the PEM is too long");
    }
    let (rest, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| "not a PEM-encoded certificate")?;
    if block.label != "CERTIFICATE" {
        return Err("the PEM block is not a CERTIFICATE");
    }
    if !rest.iter().all(u8::is_ascii_whitespace) {
        return Err("give exactly one certificate per root");
    }
    match x509_parser::parse_x509_certificate(&block.contents) {
        Ok(([], _)) => Ok(block.contents),
        _ => Err("the PEM does not hold a valid X.509 certificate"),
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn patterns(field: &str, list: &[String], check: fn(&str) -> Result<(), &'static str>) -> Result<(), FieldError> {
    if list.len() > limits::PATTERNS {
        return Err(FieldError::invalid(field, format!("at most {} entries", limits::PATTERNS)));
    }
    for (i, p) in list.iter().enumerate() {
        check(p).map_err(|why| FieldError::invalid(&format!("{field}[{i}]"), why))?;
    }
    Ok(())
}

/// The checks shared by drafts and records, over the profile sections.
#[allow(clippy::too_many_arguments)]
fn check_sections(
    registrant: &Registrant,
    application: &Application,
    security: &Security,
    authentication: &Authentication,
    communications: &Communications,
    data_model: &DataModel,
    data_privacy: &DataPrivacy,
    devices: Option<&Devices>,
) -> Result<(), FieldError> {
    text("registrant.name", &registrant.name, limits::TEXT)?;
    if let Some(c) = &registrant.contact {
        text("registrant.contact", c, limits::TEXT)?;
    }

    text("application.type", &application.app_type, limits::TYPE)?;
    text("application.name", &application.name, limits::TEXT)?;

    let _ = security; // every value of its enums is valid; duplicates are harmless

    let auth = authentication;
    if auth.roots.len() > limits::ROOTS {
        return Err(FieldError::invalid("authentication.roots", format!("at most {} roots", limits::ROOTS)));
    }
    if auth.method == AuthMethod::X509 && auth.roots.is_empty() {
        return Err(FieldError::invalid("authentication.roots", "an x509 profile needs at least one root of trust"));
    }
    let mut seen = HashSet::new();
    for (i, root) in auth.roots.iter().enumerate() {
        let at = |f: &str| format!("authentication.roots[{i}].{f}");
        text(&at("subject"), &root.subject, 1024)?;
        let der = root_der(&root.pem).map_err(|why| FieldError::invalid(&at("pem"), why))?;
        let sha = &root.sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FieldError::invalid(&at("sha256"), "must be 64 hex digits (SHA-256 of the certificate's DER)"));
        }
        let actual = sha256_hex(&der);
        if !sha.eq_ignore_ascii_case(&actual) {
            return Err(FieldError::invalid(
                &at("sha256"),
                format!("does not match the PEM's DER (its SHA-256 is {actual})"),
            ));
        }
        if !seen.insert(actual) {
            return Err(FieldError::invalid(&at("pem"), "the same root is listed twice"));
        }
    }

    let comm = communications;
    match (comm.class, comm.period_seconds) {
        (CommClass::Periodic, None) => {
            return Err(FieldError::invalid("communications.periodSeconds", "required when the class is periodic"));
        }
        (_, Some(0)) => return Err(FieldError::invalid("communications.periodSeconds", "must be at least 1")),
        _ => {}
    }
    if comm.max_requests_per_minute == Some(0) {
        return Err(FieldError::invalid("communications.maxRequestsPerMinute", "must be at least 1"));
    }
    if comm.max_payload_bytes == Some(0) {
        return Err(FieldError::invalid("communications.maxPayloadBytes", "must be at least 1"));
    }
    if comm.bindings.is_empty() {
        return Err(FieldError::invalid("communications.bindings", "list at least one binding"));
    }

    if let Some(o) = &data_model.ontology_ref {
        text("dataModel.ontologyRef", o, 1024)?;
    }
    if data_model.containers.len() > limits::CONTAINERS {
        return Err(FieldError::invalid("dataModel.containers", format!("at most {} containers", limits::CONTAINERS)));
    }
    let mut names = HashSet::new();
    for (i, c) in data_model.containers.iter().enumerate() {
        let at = |f: &str| format!("dataModel.containers[{i}].{f}");
        ResourceName::parse(&c.name).map_err(|e| FieldError::invalid(&at("name"), e.reason))?;
        if !names.insert(c.name.as_str()) {
            return Err(FieldError::invalid(&at("name"), "two containers have this name"));
        }
        if let Some(ci) = &c.content_info {
            text(&at("contentInfo"), ci, limits::TEXT)?;
        }
        if let Some(schema) = &c.schema {
            if !(schema.is_object() || schema.is_boolean()) {
                return Err(FieldError::invalid(&at("schema"), "a JSON Schema is an object or a boolean"));
            }
            if json_depth(schema) > limits::SCHEMA_DEPTH {
                return Err(FieldError::invalid(&at("schema"), "nested too deeply"));
            }
            let size = serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > limits::SCHEMA_BYTES {
                return Err(FieldError::invalid(&at("schema"), format!("larger than {} bytes", limits::SCHEMA_BYTES)));
            }
        }
    }

    patterns("dataPrivacy.allowedRecipients", &data_privacy.allowed_recipients, pattern::check_originator_pattern)?;
    if data_privacy.retention_days == Some(0) {
        return Err(FieldError::invalid("dataPrivacy.retentionDays", "must be at least 1"));
    }

    if let Some(d) = devices {
        patterns("devices.denied", &d.denied, pattern::check_device_pattern)?;
        let mut seen = HashSet::new();
        for (i, p) in d.denied.iter().enumerate() {
            if !seen.insert(p.as_str()) {
                return Err(FieldError::invalid(&format!("devices.denied[{i}]"), "listed twice"));
            }
        }
    }
    Ok(())
}

impl Draft {
    /// Checks what serde could not: formats, bounds, roots, and the rules between fields.
    pub fn validate(&self) -> Result<(), FieldError> {
        match (&self.app_id, &self.issue) {
            (Some(id), None) => check_registered(id)?,
            (None, Some(issue)) => {
                issue.app_id()?;
            }
            (Some(_), Some(_)) => {
                return Err(FieldError::invalid("issue", "give either appId or issue, not both"));
            }
            (None, None) => {
                return Err(FieldError::missing("appId", "give appId, or issue to have the registry issue one"));
            }
        }
        check_sections(
            &self.registrant,
            &self.application,
            &self.security,
            &self.authentication,
            &self.communications,
            &self.data_model,
            &self.data_privacy,
            self.devices.as_ref(),
        )
    }

    /// The App-ID this draft names, or asks to be issued.
    pub fn target_app_id(&self) -> Result<AppId, FieldError> {
        match (&self.app_id, &self.issue) {
            (Some(id), _) => Ok(id.clone()),
            (None, Some(issue)) => issue.app_id(),
            (None, None) => Err(FieldError::missing("appId", "give appId, or issue to have the registry issue one")),
        }
    }

    /// The record a create makes of this draft: version 1, the draft's status (default active) and
    /// deny list. Call [`Draft::validate`] first.
    pub fn into_new_record(self, app_id: AppId) -> Record {
        Record {
            app_id,
            version: 1,
            status: self.status.unwrap_or_default(),
            registrant: self.registrant,
            application: self.application,
            security: self.security,
            authentication: self.authentication,
            communications: self.communications,
            data_model: self.data_model,
            data_privacy: self.data_privacy,
            devices: self.devices.unwrap_or_default(),
        }
    }

    /// The next version of `current` with this draft's profile sections (a `PUT`). The registry-owned
    /// fields must be absent or unchanged; `app_id` must match.
    pub fn into_replacement(self, current: &Record) -> Result<Record, FieldError> {
        if self.issue.is_some() {
            return Err(FieldError::invalid("issue", "only a create can issue an App-ID"));
        }
        if let Some(id) = &self.app_id
            && id != &current.app_id
        {
            return Err(FieldError::invalid("appId", "does not match the App-ID in the path"));
        }
        if let Some(s) = self.status
            && s != current.status
        {
            return Err(FieldError::invalid(
                "status",
                "change the status with POST /v1/app-ids/{appId}/status, not with PUT",
            ));
        }
        if let Some(d) = &self.devices
            && d != &current.devices
        {
            return Err(FieldError::invalid(
                "devices",
                "change the deny list with PUT/DELETE /v1/app-ids/{appId}/devices/{aeId}, not with PUT",
            ));
        }
        Ok(Record {
            app_id: current.app_id.clone(),
            version: current.version + 1,
            status: current.status,
            registrant: self.registrant,
            application: self.application,
            security: self.security,
            authentication: self.authentication,
            communications: self.communications,
            data_model: self.data_model,
            data_privacy: self.data_privacy,
            devices: current.devices.clone(),
        })
    }
}

impl Record {
    /// The same checks as [`Draft::validate`], for a complete record.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_registered(&self.app_id)?;
        if self.version == 0 {
            return Err(FieldError::invalid("version", "versions start at 1"));
        }
        check_sections(
            &self.registrant,
            &self.application,
            &self.security,
            &self.authentication,
            &self.communications,
            &self.data_model,
            &self.data_privacy,
            Some(&self.devices),
        )
    }

    /// The strong `ETag` of this version: the version in quotes.
    pub fn etag(&self) -> String {
        etag(self.version)
    }

    /// The record's canonical JSON: the bytes the registry stores, serves and signs.
    pub fn to_json(&self) -> Vec<u8> {
        // A Record holds only strings, numbers, booleans and JSON values: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The strong `ETag` of a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Deserialises `bytes` as `T`, a JSON object (every body of the API is one), naming the path of
/// the first failing field.
pub fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FieldError> {
    // serde would also read a struct from an array of its fields; the API takes objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b != b'{') {
        return Err(FieldError::invalid(crate::error::BODY, "the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(FieldError::from_serde)?;
    de.end().map_err(|e| FieldError::syntax(&e, crate::error::BODY))?;
    Ok(value)
}

/// Parses and validates a draft (a create, a `PUT`, or one line of an import).
pub fn parse_draft(bytes: &[u8]) -> Result<Draft, FieldError> {
    let draft: Draft = from_json(bytes)?;
    draft.validate()?;
    Ok(draft)
}

/// Parses and validates a complete record.
pub fn parse_record(bytes: &[u8]) -> Result<Record, FieldError> {
    let record: Record = from_json(bytes)?;
    record.validate()?;
    Ok(record)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::FieldErrorKind;
    use serde_json::{Value, json};

    /// A root of trust made at run time.
    fn root_pem() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["root.example".to_owned()]).unwrap();
        (ck.cert.pem(), sha256_hex(ck.cert.der()))
    }

    pub(crate) fn sample() -> Value {
        json!({
            "appId": "Racme01.com.acme.thermostat",
            "status": "active",
            "registrant": {"name": "Acme Devices Ltd", "contact": "security@acme.example"},
            "application": {"type": "thermostat", "class": "consumer", "name": "Acme Smart Thermostat"},
            "security": {"keyStorage": "secure-element", "tlsVersions": ["1.2", "1.3"], "firmwareSigned": true},
            "authentication": {"method": "none", "roots": [], "aeIdInCertificate": false},
            "communications": {"class": "periodic", "periodSeconds": 300, "maxRequestsPerMinute": 4,
                               "maxPayloadBytes": 2048, "bindings": ["http", "mqtt"]},
            "dataModel": {"ontologyRef": "https://example.org/ontology#Thermostat",
                          "containers": [{"name": "temperature", "contentInfo": "application/json:0",
                                          "schema": {"type": "object"}}]},
            "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": ["Cehr*"],
                            "retentionDays": 30, "dataMining": false, "resale": false},
            "devices": {"denied": ["S-stolen-0042"]}
        })
    }

    pub(crate) fn sample_record() -> Record {
        let d = parse_draft(&serde_json::to_vec(&sample()).unwrap()).unwrap();
        let id = d.target_app_id().unwrap();
        d.into_new_record(id)
    }

    fn draft_err(v: &Value) -> FieldError {
        parse_draft(&serde_json::to_vec(v).unwrap()).unwrap_err()
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut v = sample();
        let mut at = &mut v;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value;
        v
    }

    fn with_container(field: &str, value: Value) -> Value {
        let mut v = sample();
        v["dataModel"]["containers"][0][field] = value;
        v
    }

    #[test]
    fn the_design_example_parses() {
        let r = sample_record();
        assert_eq!(r.version, 1);
        assert_eq!(r.status, Status::Active);
        assert_eq!(r.application.class, AppClass::Consumer);
        assert_eq!(r.devices.denied, vec!["S-stolen-0042"]);
        assert_eq!(r.etag(), "\"1\"");
    }

    #[test]
    fn field_paths_name_the_failure() {
        let cases: Vec<(Value, FieldErrorKind, &str)> = vec![
            (with(&["application", "class"], json!("galactic")), FieldErrorKind::Invalid, "application.class"),
            (with(&["bogusField"], json!(1)), FieldErrorKind::UnknownField, "bogusField"),
            (with(&["security", "extra"], json!(true)), FieldErrorKind::UnknownField, "security.extra"),
            (with(&["appId"], json!("Xwrong")), FieldErrorKind::Invalid, "appId"),
            (with(&["appId"], json!("Nnot.registered")), FieldErrorKind::Invalid, "appId"),
            (with(&["security", "keyStorage"], json!("vault")), FieldErrorKind::Invalid, "security.keyStorage"),
            (with(&["security", "tlsVersions"], json!(["1.1"])), FieldErrorKind::Invalid, "security.tlsVersions[0]"),
            (with(&["authentication", "method"], json!("x509")), FieldErrorKind::Invalid, "authentication.roots"),
            (
                with(&["authentication", "roots"], json!([{"subject": "CN=x", "sha256": "00", "pem": "nope"}])),
                FieldErrorKind::Invalid,
                "authentication.roots[0].pem",
            ),
            (
                with(&["authentication", "roots"], json!([{"subject": "CN=x", "pem": "nope"}])),
                FieldErrorKind::MissingField,
                "authentication.roots[0].sha256",
            ),
            (
                with(&["communications", "periodSeconds"], Value::Null),
                FieldErrorKind::Invalid,
                "communications.periodSeconds",
            ),
            (
                with(&["communications", "periodSeconds"], json!(-1)),
                FieldErrorKind::Invalid,
                "communications.periodSeconds",
            ),
            (with(&["communications", "bindings"], json!([])), FieldErrorKind::Invalid, "communications.bindings"),
            (
                with(&["communications", "bindings"], json!(["smoke"])),
                FieldErrorKind::Invalid,
                "communications.bindings[0]",
            ),
            (with_container("name", json!("a/b")), FieldErrorKind::Invalid, "dataModel.containers[0].name"),
            (with_container("schema", json!(3)), FieldErrorKind::Invalid, "dataModel.containers[0].schema"),
            (
                with(&["dataPrivacy", "allowedRecipients"], json!(["a b"])),
                FieldErrorKind::Invalid,
                "dataPrivacy.allowedRecipients[0]",
            ),
            (with(&["dataPrivacy", "retentionDays"], json!(0)), FieldErrorKind::Invalid, "dataPrivacy.retentionDays"),
            (with(&["devices", "denied"], json!(["X1"])), FieldErrorKind::Invalid, "devices.denied[0]"),
            (with(&["devices", "denied"], json!(["S1", "S1"])), FieldErrorKind::Invalid, "devices.denied[1]"),
            (with(&["registrant", "name"], json!("")), FieldErrorKind::Invalid, "registrant.name"),
            (with(&["application", "type"], json!("t".repeat(65))), FieldErrorKind::Invalid, "application.type"),
            (with(&["version"], json!("one")), FieldErrorKind::Invalid, "version"),
        ];
        for (v, kind, field) in cases {
            let e = draft_err(&v);
            assert_eq!((e.kind, e.field.as_deref()), (kind, Some(field)), "{e:?}");
            assert!(!e.message.is_empty());
        }
        let mut v = sample();
        v.as_object_mut().unwrap().remove("registrant");
        let e = draft_err(&v);
        assert_eq!((e.kind, e.field.as_deref()), (FieldErrorKind::MissingField, Some("registrant")));
        let mut v = sample();
        v["application"].as_object_mut().unwrap().remove("name");
        assert_eq!(draft_err(&v).field.as_deref(), Some("application.name"));
    }

    /// Malformed JSON names where it broke: the field being read, or `body` for the document.
    #[test]
    fn syntax_errors_name_where_they_failed() {
        let mut trailing = serde_json::to_vec(&sample()).unwrap();
        trailing.extend_from_slice(b" x");
        let cases: &[(&[u8], FieldErrorKind, &str)] = &[
            (b"{not json", FieldErrorKind::Syntax, "body"),
            (b"", FieldErrorKind::Syntax, "body"),
            (b"   ", FieldErrorKind::Syntax, "body"),
            (&trailing, FieldErrorKind::Syntax, "body"),
            (b"[1,2]", FieldErrorKind::Invalid, "body"),
            (b"\"a string\"", FieldErrorKind::Invalid, "body"),
            (b"{\"appId\":", FieldErrorKind::Syntax, "appId"),
            (b"{\"appId\": \"Ra.b.c\", \"application\": {\"class\": tru", FieldErrorKind::Syntax, "application.class"),
            (b"{\"registrant\": {\"name\": \"x\",}}", FieldErrorKind::Syntax, "registrant"),
        ];
        for (bytes, kind, field) in cases {
            let e = parse_draft(bytes).unwrap_err();
            assert_eq!(
                (e.kind, e.field.as_deref()),
                (*kind, Some(*field)),
                "{:?}: {e:?}",
                String::from_utf8_lossy(bytes)
            );
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn roots_are_checked_against_their_der() {
        let (pem, sha) = root_pem();
        let root = |sha: &str, pem: &str| json!([{"subject": "CN=root", "sha256": sha, "pem": pem}]);
        let mut ok = with(&["authentication", "roots"], root(&sha, &pem));
        ok["authentication"]["method"] = json!("x509");
        let d = parse_draft(&serde_json::to_vec(&ok).unwrap()).unwrap();
        assert_eq!(d.authentication.roots[0].der().map(|d| sha256_hex(&d)), Ok(sha.clone()));
        // uppercase hex is the same digest
        let mut upper = ok.clone();
        upper["authentication"]["roots"] = root(&sha.to_uppercase(), &pem);
        assert!(parse_draft(&serde_json::to_vec(&upper).unwrap()).is_ok());

        let mut wrong = ok.clone();
        wrong["authentication"]["roots"] = root(&"0".repeat(64), &pem);
        let e = draft_err(&wrong);
        assert_eq!(e.field.as_deref(), Some("authentication.roots[0].sha256"));
        assert!(e.message.contains(&sha), "{e:?}");

        let mut two = ok.clone();
        two["authentication"]["roots"] = root(&sha, &format!("{pem}{pem}"));
        assert_eq!(draft_err(&two).field.as_deref(), Some("authentication.roots[0].pem"));

        let mut garbled = ok.clone();
        garbled["authentication"]["roots"] = root(&sha, &pem.replace("MII", "MIA"));
        assert_eq!(draft_err(&garbled).field.as_deref(), Some("authentication.roots[0].pem"));

        let mut key = ok.clone();
        key["authentication"]["roots"] = root(&sha, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert_eq!(draft_err(&key).field.as_deref(), Some("authentication.roots[0].pem"));

        let mut dup = ok.clone();
        dup["authentication"]["roots"] = json!([
            {"subject": "CN=root", "sha256": sha, "pem": pem},
            {"subject": "CN=root", "sha256": sha, "pem": pem}
        ]);
        assert_eq!(draft_err(&dup).field.as_deref(), Some("authentication.roots[1].pem"));
    }

    #[test]
    fn app_id_or_issue() {
        let mut v = sample();
        v.as_object_mut().unwrap().remove("appId");
        assert_eq!(draft_err(&v).field.as_deref(), Some("appId"));
        v["issue"] = json!({"authority": "bar02", "reverseDns": "com.bar", "name": "meter"});
        let d = parse_draft(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(d.target_app_id().unwrap().as_str(), "Rbar02.com.bar.meter");
        v["issue"]["authority"] = json!("a.b");
        assert_eq!(draft_err(&v).field.as_deref(), Some("issue"));
        v["issue"]["authority"] = json!("bar02");
        v["appId"] = json!("Ra.b.c");
        assert_eq!(draft_err(&v).field.as_deref(), Some("issue"));
    }

    #[test]
    fn replacement_keeps_registry_fields() {
        let current = sample_record();
        let mut v = sample();
        v["application"]["class"] = json!("industrial");
        let d = parse_draft(&serde_json::to_vec(&v).unwrap()).unwrap();
        let next = d.clone().into_replacement(&current).unwrap();
        assert_eq!(next.version, 2);
        assert_eq!(next.application.class, AppClass::Industrial);
        assert_eq!(next.devices, current.devices);

        let mut changed = d.clone();
        changed.status = Some(Status::Revoked);
        assert_eq!(changed.into_replacement(&current).unwrap_err().field.as_deref(), Some("status"));
        let mut changed = d.clone();
        changed.devices = Some(Devices::default());
        assert_eq!(changed.into_replacement(&current).unwrap_err().field.as_deref(), Some("devices"));
        let mut changed = d.clone();
        changed.app_id = Some(AppId::parse("Rother.com.x.y").unwrap());
        assert_eq!(changed.into_replacement(&current).unwrap_err().field.as_deref(), Some("appId"));
        let mut absent = d;
        absent.app_id = None;
        absent.status = None;
        absent.devices = None;
        assert!(absent.into_replacement(&current).is_ok());
    }

    #[test]
    fn records_round_trip() {
        let r = sample_record();
        let bytes = r.to_json();
        let back = parse_record(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.to_json(), bytes, "canonical bytes are stable");
        // a record is also a valid draft (GET, edit, PUT)
        let d = parse_draft(&bytes).unwrap();
        assert_eq!(d.into_replacement(&r).unwrap().version, 2);
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["surprise"] = json!(1);
        assert_eq!(parse_record(&serde_json::to_vec(&v).unwrap()).unwrap_err().field.as_deref(), Some("surprise"));
    }

    #[test]
    fn minimal_profile_uses_defaults() {
        let v = json!({
            "appId": "Rmin.org.x.y",
            "registrant": {"name": "M"},
            "application": {"type": "t", "class": "critical-infrastructure", "name": "n"},
            "security": {"keyStorage": "tpm"},
            "authentication": {"method": "psk"},
            "communications": {"class": "on-demand", "bindings": ["coap"]},
            "dataPrivacy": {"category": "non-personal", "sharing": "public"}
        });
        let d = parse_draft(&serde_json::to_vec(&v).unwrap()).unwrap();
        let r = d.into_new_record(AppId::parse("Rmin.org.x.y").unwrap());
        assert_eq!(r.status, Status::Active);
        assert!(r.devices.denied.is_empty() && r.data_model.containers.is_empty());
        assert_eq!(parse_record(&r.to_json()).unwrap(), r);
    }
}
