//! The operator's admission policy (DESIGN.md §7), read from TOML, and the decision it makes on a
//! profile. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use appid::profile::{AppClass, AuthMethod, Binding, KeyStorage};
use appid::{Record, Status};
use onem2m::Rsc;
use serde::Deserialize;

/// `mode`: what the CSE does with a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Decide and act.
    #[default]
    Enforce,
    /// Decide and record, but admit anyway.
    Audit,
    /// No admission: a plain conformant CSE.
    Off,
}

/// `unregistered`: what happens to non-registered (`N…`) App-IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unregistered {
    #[default]
    Reject,
    Admit,
}

/// `registry_unreachable`: what happens when the registry cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unreachable {
    /// Use a still-valid signed record from the cache, else reject.
    #[default]
    Cached,
    Reject,
    Admit,
}

/// `on_revoke`: what happens to the registered AEs of an App-ID that is suspended or revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnRevoke {
    /// Refuse their every request.
    #[default]
    Block,
    /// Refuse, and delete them.
    Delete,
}

/// One value or a list of values, in `when` and `require`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains(&self, v: &str) -> bool {
        match self {
            OneOrMany::One(s) => s == v,
            OneOrMany::Many(list) => list.iter().any(|s| s == v),
        }
    }
}

/// Profile fields a rule can look at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub class: Option<OneOrMany>,
    #[serde(rename = "type")]
    pub app_type: Option<OneOrMany>,
    #[serde(rename = "keyStorage")]
    pub key_storage: Option<OneOrMany>,
    pub method: Option<OneOrMany>,
    pub binding: Option<OneOrMany>,
    #[serde(rename = "firmwareSigned")]
    pub firmware_signed: Option<bool>,
}

/// A rule: profiles that match `when` must satisfy `require`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub when: Match,
    #[serde(default)]
    pub require: Match,
}

/// Resource limits per application class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Most content instances per container.
    pub mni: Option<u64>,
    /// Most bytes per container.
    pub mbs: Option<u64>,
}

/// A registry public key given in the policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyKey {
    pub kid: String,
    #[serde(rename = "publicKey")]
    pub public_key: String,
}

/// `[admission]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSection {
    #[serde(default)]
    pub mode: Mode,
    /// The registry's base URL.
    pub registry: Option<String>,
    /// A read token for the registry (or `WARDEN_TOKEN`).
    pub token: Option<String>,
    /// The registry's public keys: inline, or a file with the `GET /v1/keys` body.
    #[serde(default)]
    pub keys: Vec<PolicyKey>,
    pub keys_file: Option<String>,
    #[serde(default)]
    pub unregistered: Unregistered,
    #[serde(default)]
    pub registry_unreachable: Unreachable,
    #[serde(default = "default_ttl")]
    pub cache_ttl_seconds: u64,
    /// How long "not registered" is remembered; default `min(cache_ttl_seconds, 10)`.
    pub negative_ttl_seconds: Option<u64>,
    /// How long a lookup may take before the registry counts as unreachable.
    #[serde(default = "default_lookup_timeout")]
    pub lookup_timeout_ms: u64,
    /// With `registry_unreachable = "cached"`, how old a cached record may be and still be used.
    #[serde(default = "default_max_stale")]
    pub max_stale_seconds: u64,
    #[serde(default)]
    pub on_revoke: OnRevoke,
    /// How often AEs admitted unverified (`registry_unreachable = "admit"`) are checked again
    /// while the registry cannot be reached.
    #[serde(default = "default_reverify")]
    pub reverify_seconds: u64,
    /// The most entries the decision log keeps (the oldest go first).
    #[serde(default = "default_log_entries")]
    pub decision_log_max_entries: u64,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

fn default_ttl() -> u64 {
    300
}
fn default_lookup_timeout() -> u64 {
    1000
}
fn default_max_stale() -> u64 {
    24 * 3600
}
fn default_reverify() -> u64 {
    5
}
fn default_log_entries() -> u64 {
    crate::store::decisions::DEFAULT_MAX_ENTRIES
}

/// The quotas of `warden up`'s default policy, per class: a consumer device gets the least, a
/// critical-infrastructure one the most (it may have to keep a longer history).
pub const DEFAULT_QUOTAS: &[(&str, Quota)] = &[
    ("consumer", Quota { mni: Some(1_000), mbs: Some(1024 * 1024) }),
    ("industrial", Quota { mni: Some(10_000), mbs: Some(16 * 1024 * 1024) }),
    ("critical-infrastructure", Quota { mni: Some(100_000), mbs: Some(64 * 1024 * 1024) }),
];

/// The policy file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub admission: AdmissionSection,
    /// Quotas by class name (`consumer`, `industrial`, `critical-infrastructure`).
    #[serde(default)]
    pub quotas: BTreeMap<String, Quota>,
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        for class in p.quotas.keys() {
            if AppClass::parse(class).is_none() {
                return Err(format!(
                    "quotas.{class}: not an application class (consumer, industrial, critical-infrastructure)"
                ));
            }
        }
        for r in &p.admission.rules {
            r.when.check(&format!("rule {:?} when", r.name))?;
            r.require.check(&format!("rule {:?} require", r.name))?;
        }
        if p.admission.reverify_seconds == 0 {
            return Err("admission.reverify_seconds must be at least 1".into());
        }
        if p.admission.decision_log_max_entries == 0 {
            return Err("admission.decision_log_max_entries must be at least 1".into());
        }
        Ok(p)
    }

    /// The default of `warden up`: enforce; `x509` App-IDs over mutual TLS, `none` over plain HTTP;
    /// the [`DEFAULT_QUOTAS`].
    pub fn default_enforcing(registry: &str) -> Self {
        Policy {
            admission: AdmissionSection {
                mode: Mode::Enforce,
                registry: Some(registry.to_owned()),
                token: None,
                keys: Vec::new(),
                keys_file: None,
                unregistered: Unregistered::Reject,
                registry_unreachable: Unreachable::Cached,
                cache_ttl_seconds: default_ttl(),
                negative_ttl_seconds: None,
                lookup_timeout_ms: default_lookup_timeout(),
                max_stale_seconds: default_max_stale(),
                on_revoke: OnRevoke::Block,
                reverify_seconds: default_reverify(),
                decision_log_max_entries: default_log_entries(),
                rules: Vec::new(),
            },
            quotas: DEFAULT_QUOTAS.iter().map(|(c, q)| ((*c).to_owned(), *q)).collect(),
        }
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.admission.cache_ttl_seconds)
    }

    /// How long a negative answer is cached: the setting, or `min(cache_ttl, 10 s)`.
    pub fn negative_ttl(&self) -> Duration {
        Duration::from_secs(self.admission.negative_ttl_seconds.unwrap_or(self.admission.cache_ttl_seconds.min(10)))
    }

    pub fn quota(&self, class: AppClass) -> Quota {
        self.quotas.get(class.as_str()).copied().unwrap_or_default()
    }
}

const CLASSES: &[&str] = &["consumer", "industrial", "critical-infrastructure"];
const KEY_STORAGES: &[&str] = &["none", "software", "tee", "secure-element", "tpm"];
const METHODS: &[&str] = &["x509", "psk", "oauth2", "none"];
const BINDINGS: &[&str] = &["http", "mqtt", "coap", "websocket"];

impl Match {
    fn check(&self, what: &str) -> Result<(), String> {
        let check = |field: &str, v: &Option<OneOrMany>, allowed: &[&str]| -> Result<(), String> {
            let values: Vec<&String> = match v {
                None => Vec::new(),
                Some(OneOrMany::One(s)) => vec![s],
                Some(OneOrMany::Many(l)) => l.iter().collect(),
            };
            match values.into_iter().find(|s| !allowed.contains(&s.as_str())) {
                Some(bad) => Err(format!("{what}.{field}: {bad:?} is not one of {allowed:?}")),
                None => Ok(()),
            }
        };
        check("class", &self.class, CLASSES)?;
        check("keyStorage", &self.key_storage, KEY_STORAGES)?;
        check("method", &self.method, METHODS)?;
        check("binding", &self.binding, BINDINGS)
    }

    /// True if the profile has every property listed (an empty match matches everything).
    fn matches(&self, r: &Record) -> bool {
        let ok = |m: &Option<OneOrMany>, v: &str| m.as_ref().is_none_or(|m| m.contains(v));
        ok(&self.class, r.application.class.as_str())
            && ok(&self.app_type, &r.application.app_type)
            && ok(&self.key_storage, key_storage_name(r.security.key_storage))
            && ok(&self.method, method_name(r.authentication.method))
            && self
                .binding
                .as_ref()
                .is_none_or(|b| r.communications.bindings.iter().any(|x| b.contains(binding_name(*x))))
            && self.firmware_signed.is_none_or(|f| f == r.security.firmware_signed)
    }
}

pub fn key_storage_name(k: KeyStorage) -> &'static str {
    match k {
        KeyStorage::None => "none",
        KeyStorage::Software => "software",
        KeyStorage::Tee => "tee",
        KeyStorage::SecureElement => "secure-element",
        KeyStorage::Tpm => "tpm",
    }
}

pub fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::X509 => "x509",
        AuthMethod::Psk => "psk",
        AuthMethod::Oauth2 => "oauth2",
        AuthMethod::None => "none",
    }
}

pub fn binding_name(b: Binding) -> &'static str {
    match b {
        Binding::Http => "http",
        Binding::Mqtt => "mqtt",
        Binding::Coap => "coap",
        Binding::Websocket => "websocket",
    }
}

/// Why an AE was rejected: a stable label for metrics and the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unregistered,
    UnknownAppId,
    Suspended,
    Revoked,
    DeviceDenied,
    SecurityAssociationRequired,
    WrongRoot,
    ClaimMismatch,
    BindingNotAllowed,
    MethodUnsupported,
    Rule,
    RegistryUnreachable,
    BadSignature,
    RegistryAuth,
    RegistryError,
    /// The client certificate has expired.
    Expired,
    /// The client certificate is not valid yet.
    NotYetValid,
    /// The client certificate carries no (single, well-formed) App-ID.
    NoAppIdClaim,
    /// The client certificate is unusable otherwise (wrong key usage, bad signature, ...).
    BadCertificate,
    /// `api` is not an App-ID.
    BadApi,
    /// Other attributes of the AE are invalid.
    BadRequest,
    /// The AE-ID is registered already (maybe from another credential).
    AlreadyRegistered,
    /// A CSE-ID cannot register as an AE.
    CseOriginator,
    /// The originator is an AE-ID of another CSE.
    ForeignAeId,
    /// The parent does not exist or cannot hold an AE (an AE is created under the CSEBase).
    InvalidParent,
    /// Another resource under the parent has the AE's resource name.
    NameTaken,
    /// The request expired before the AE could be stored.
    RequestExpired,
    /// The admin originator without the admin token.
    AdminToken,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unregistered => "unregistered",
            Reason::UnknownAppId => "unknown_app_id",
            Reason::Suspended => "suspended",
            Reason::Revoked => "revoked",
            Reason::DeviceDenied => "device_denied",
            Reason::SecurityAssociationRequired => "sa_required",
            Reason::WrongRoot => "wrong_root",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::BindingNotAllowed => "binding_not_allowed",
            Reason::MethodUnsupported => "method_unsupported",
            Reason::Rule => "rule",
            Reason::RegistryUnreachable => "registry_unreachable",
            Reason::BadSignature => "bad_signature",
            Reason::RegistryAuth => "registry_auth",
            Reason::RegistryError => "registry_error",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::NoAppIdClaim => "no_app_id",
            Reason::BadCertificate => "bad_certificate",
            Reason::BadApi => "bad_api",
            Reason::BadRequest => "bad_request",
            Reason::AlreadyRegistered => "already_registered",
            Reason::CseOriginator => "cse_originator",
            Reason::ForeignAeId => "foreign_ae_id",
            Reason::InvalidParent => "invalid_parent",
            Reason::NameTaken => "name_taken",
            Reason::RequestExpired => "request_expired",
            Reason::AdminToken => "admin_token_required",
        }
    }
}

/// A rejection: the code to answer, the reason, the rule that decided (if one did), and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rsc: Rsc,
    pub reason: Reason,
    pub rule: Option<String>,
    pub message: String,
}

impl Rejection {
    pub fn new(rsc: Rsc, reason: Reason, message: impl Into<String>) -> Self {
        Self { rsc, reason, rule: None, message: message.into() }
    }
}

/// The client certificate of the registration, as far as it verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Certificate<'a> {
    /// No security association (plain HTTP, or TLS without a client certificate).
    #[default]
    None,
    /// It chained to the root with this SHA-256 (hex).
    Verified(&'a str),
    /// It was presented but does not verify, for this reason.
    Failed(Reason, &'a str),
}

/// What the transport established about the AE (DESIGN.md §7 step 2).
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// The client certificate.
    pub cert: Certificate<'a>,
    /// The AE-ID the CSE is about to register (stem).
    pub ae_id: &'a str,
    /// The same AE-ID in its SP-relative and absolute forms, which deny entries may name.
    pub full_ae_ids: &'a [String],
    /// The binding the request came through.
    pub binding: &'a str,
}

/// Steps 6 and 7 of DESIGN.md §7 on a registered App-ID's verified record.
pub fn judge(policy: &Policy, record: &Record, ev: &Evidence<'_>) -> Result<(), Rejection> {
    use Rsc::AppRuleValidationFailed as Refused;
    match record.status {
        Status::Active => {}
        Status::Suspended => {
            return Err(Rejection::new(
                Refused,
                Reason::Suspended,
                format!("the App-ID {} is suspended", record.app_id),
            ));
        }
        Status::Revoked => {
            return Err(Rejection::new(Refused, Reason::Revoked, format!("the App-ID {} is revoked", record.app_id)));
        }
    }
    let mut forms = std::iter::once(ev.ae_id).chain(ev.full_ae_ids.iter().map(String::as_str));
    if let Some(pattern) = forms.find_map(|id| appid::pattern::denied_by(&record.devices.denied, id)) {
        return Err(Rejection::new(
            Refused,
            Reason::DeviceDenied,
            format!("the device {} is denied ({pattern})", ev.ae_id),
        ));
    }
    if !record.communications.bindings.iter().any(|b| binding_name(*b) == ev.binding) {
        return Err(Rejection::new(
            Refused,
            Reason::BindingNotAllowed,
            format!("the {} binding is not among the App-ID's bindings", ev.binding),
        ));
    }
    // A certificate that was presented must verify, whatever the method (DESIGN.md §7 step 6).
    if let Certificate::Failed(reason, why) = ev.cert {
        return Err(Rejection::new(Rsc::OriginatorNotAuthenticated, reason, why));
    }
    match record.authentication.method {
        AuthMethod::X509 => match ev.cert {
            Certificate::None | Certificate::Failed(..) => {
                return Err(Rejection::new(
                    Rsc::SecurityAssociationRequired,
                    Reason::SecurityAssociationRequired,
                    "this App-ID authenticates with x509: register over mutual TLS",
                ));
            }
            Certificate::Verified(root) => {
                if !record.authentication.roots.iter().any(|r| r.sha256.eq_ignore_ascii_case(root)) {
                    return Err(Rejection::new(
                        Rsc::OriginatorNotAuthenticated,
                        Reason::WrongRoot,
                        "the client certificate does not chain to one of the App-ID's roots",
                    ));
                }
            }
        },
        AuthMethod::None => {}
        m @ (AuthMethod::Psk | AuthMethod::Oauth2) => {
            return Err(Rejection::new(
                Refused,
                Reason::MethodUnsupported,
                format!("authentication method {} is not supported by this CSE", method_name(m)),
            ));
        }
    }
    for rule in &policy.admission.rules {
        if rule.when.matches(record) && !rule.require.matches(record) {
            return Err(Rejection {
                rsc: Refused,
                reason: Reason::Rule,
                rule: Some(rule.name.clone()),
                message: format!("the profile does not satisfy the rule {:?}", rule.name),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[admission]
mode = "enforce"
registry = "http://127.0.0.1:7070"
unregistered = "reject"
registry_unreachable = "cached"
cache_ttl_seconds = 300

[[admission.rule]]
name = "critical infrastructure needs hardware keys and x509"
when = { class = "critical-infrastructure" }
require = { method = ["x509"], keyStorage = ["secure-element", "tpm"] }

[quotas.consumer]
mni = 1000
mbs = 1048576
"#;

    pub(crate) fn record(class: &str, method: &str, key_storage: &str) -> Record {
        serde_json::from_value(serde_json::json!({
            "appId": "Racme.com.acme.thermo", "version": 3, "status": "active",
            "registrant": {"name": "Acme"},
            "application": {"type": "thermostat", "class": class, "name": "T"},
            "security": {"keyStorage": key_storage, "tlsVersions": ["1.3"], "firmwareSigned": true},
            "authentication": {"method": method, "roots": [], "aeIdInCertificate": false},
            "communications": {"class": "periodic", "periodSeconds": 60, "maxRequestsPerMinute": 10,
                               "maxPayloadBytes": 1024, "bindings": ["http"]},
            "dataModel": {"containers": []},
            "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": [], "retentionDays": 7},
            "devices": {"denied": ["S-stolen-*"]},
        }))
        .unwrap()
    }

    fn ev<'a>(ae: &'a str, root: Option<&'a str>) -> Evidence<'a> {
        let cert = root.map_or(Certificate::None, Certificate::Verified);
        Evidence { cert, ae_id: ae, full_ae_ids: &[], binding: "http" }
    }

    #[test]
    fn parses_the_design_example() {
        let p = Policy::parse(SAMPLE).unwrap();
        assert_eq!(p.admission.mode, Mode::Enforce);
        assert_eq!(p.admission.rules.len(), 1);
        assert_eq!(p.quota(AppClass::Consumer), Quota { mni: Some(1000), mbs: Some(1_048_576) });
        assert_eq!(p.quota(AppClass::Industrial), Quota::default());
        assert!(Policy::parse("[admission]\nmode = \"sometimes\"").is_err());
        assert!(Policy::parse("[admission]\nbogus = 1").is_err());
        assert!(Policy::parse("[admission]\n[quotas.galactic]\nmni = 1").is_err());
        assert!(
            Policy::parse("[admission]\n[[admission.rule]]\nname = \"x\"\nrequire = { method = \"carrier-pigeon\" }")
                .is_err()
        );
    }

    #[test]
    fn decisions() {
        let p = Policy::parse(SAMPLE).unwrap();
        judge(&p, &record("consumer", "none", "software"), &ev("Cdev", None)).unwrap();
        let r = judge(&p, &record("critical-infrastructure", "none", "software"), &ev("Cdev", None)).unwrap_err();
        assert_eq!(
            (r.reason, r.rule.as_deref()),
            (Reason::Rule, Some("critical infrastructure needs hardware keys and x509"))
        );
        let mut x = record("critical-infrastructure", "x509", "tpm");
        x.authentication.roots =
            vec![appid::profile::Root { subject: "CN=r".into(), sha256: "ab".repeat(32), pem: String::new() }];
        judge(&p, &x, &ev("Cdev", Some(&"AB".repeat(32)))).unwrap();
        assert_eq!(judge(&p, &x, &ev("Cdev", None)).unwrap_err().rsc, Rsc::SecurityAssociationRequired);
        assert_eq!(judge(&p, &x, &ev("Cdev", Some(&"cd".repeat(32)))).unwrap_err().reason, Reason::WrongRoot);
        let mut s = record("consumer", "none", "software");
        s.status = Status::Revoked;
        assert_eq!(judge(&p, &s, &ev("Cdev", None)).unwrap_err().reason, Reason::Revoked);
        s.status = Status::Suspended;
        assert_eq!(judge(&p, &s, &ev("Cdev", None)).unwrap_err().reason, Reason::Suspended);
        let mut r = record("consumer", "none", "software");
        assert_eq!(judge(&p, &r, &ev("S-stolen-1", None)).unwrap_err().reason, Reason::DeviceDenied);
        // A deny entry may name the AE-ID in its SP-relative or absolute form.
        r.devices.denied = vec!["/id-in/Cbad".into(), "//sp.example.com/id-in/Cworse".into()];
        let forms = |stem: &str| vec![format!("/id-in/{stem}"), format!("//sp.example.com/id-in/{stem}")];
        for stem in ["Cbad", "Cworse"] {
            let full = forms(stem);
            let e = Evidence { full_ae_ids: &full, ..ev(stem, None) };
            assert_eq!(judge(&p, &r, &e).unwrap_err().reason, Reason::DeviceDenied, "{stem}");
        }
        let full = forms("Cgood");
        judge(&p, &r, &Evidence { full_ae_ids: &full, ..ev("Cgood", None) }).unwrap();
        let r = record("consumer", "none", "software");
        assert_eq!(
            judge(&p, &r, &Evidence { binding: "mqtt", ..ev("Cdev", None) }).unwrap_err().reason,
            Reason::BindingNotAllowed
        );
        assert_eq!(
            judge(&p, &record("consumer", "psk", "software"), &ev("Cdev", None)).unwrap_err().reason,
            Reason::MethodUnsupported
        );
        // A presented certificate that failed is refused even where none is needed.
        let failed = Evidence { cert: Certificate::Failed(Reason::Expired, "expired"), ..ev("Cdev", None) };
        let r = judge(&p, &record("consumer", "none", "software"), &failed).unwrap_err();
        assert_eq!((r.rsc, r.reason), (Rsc::OriginatorNotAuthenticated, Reason::Expired));
    }

    #[test]
    fn the_default_policy_has_growing_quotas_and_a_short_negative_ttl() {
        let p = Policy::default_enforcing("http://127.0.0.1:7070");
        let (c, i, k) =
            (p.quota(AppClass::Consumer), p.quota(AppClass::Industrial), p.quota(AppClass::CriticalInfrastructure));
        assert!(c.mni < i.mni && i.mni < k.mni, "{c:?} {i:?} {k:?}");
        assert!(c.mbs < i.mbs && i.mbs < k.mbs);
        assert_eq!(p.negative_ttl(), Duration::from_secs(10));
        let short = Policy::parse("[admission]\ncache_ttl_seconds = 3").unwrap();
        assert_eq!(short.negative_ttl(), Duration::from_secs(3));
        let set = Policy::parse("[admission]\nnegative_ttl_seconds = 60").unwrap();
        assert_eq!(set.negative_ttl(), Duration::from_secs(60));
        assert!(Policy::parse("[admission]\nreverify_seconds = 0").is_err());
    }
}
