//! Admission: vetting every AE registration against the App-ID Registry and the operator's policy,
//! assigning resources and limits to admitted AEs, and acting on revocations (DESIGN.md §7).
//!
//! The core asks this module at four points: at AE CREATE ([`Admission::decide`], then
//! [`Admission::admitted`] once the AE is stored), before every request of an AE
//! ([`Admission::check`]: credential binding, revocation, binding, payload and rate limits), when an
//! admitted AE creates a container (quotas and the privacy policy) or a contentInstance (the data
//! model). What must survive a restart — the credential binding and the signed profile it was
//! decided on — is stored with the AE resource itself, in the same transaction.

pub mod policy;
pub mod profiles;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use appid::profile::Sharing;
use appid::{Record, Status};
use bytes::Bytes;
use onem2m::{AppId, AppIdKind, Error, Rsc, Timestamp};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use self::policy::{Evidence, Mode, Policy, Reason, Rejection, Unreachable, Unregistered, judge};
use self::profiles::{Answer, Failure, Lookup, Profiles};
use crate::core::SecurityAssociation;
use crate::resource::Resource;
use crate::store::decisions::{Decision, DecisionLog};

/// What the core tells admission about an AE registration.
#[derive(Debug)]
pub struct Registration<'a> {
    /// The AE-ID stem the AE will get.
    pub stem: &'a str,
    /// The same AE-ID in its SP-relative and absolute forms.
    pub full_ae_ids: &'a [String],
    pub app_id: &'a AppId,
    pub sa: Option<&'a SecurityAssociation>,
    /// The binding's name (`http`, `mqtt`).
    pub binding: &'a str,
    pub now: Timestamp,
}

/// What an admission grants: the profile decided on and the credential bound to the AE.
#[derive(Debug, Clone)]
pub struct Grant {
    pub app_id: AppId,
    pub credential: Option<String>,
    pub answer: Option<Arc<Answer>>,
    /// The decision to record once the AE is stored.
    reason: &'static str,
    message: String,
    /// Enforced (resources assigned, requests checked) or only audited.
    enforced: bool,
}

impl Grant {
    pub fn record(&self) -> Option<&Record> {
        self.answer.as_ref().and_then(|a| a.record.as_deref())
    }

    /// The metadata stored with the AE resource.
    pub fn meta(&self, acp: Option<&str>) -> Value {
        let (body, signature) = match &self.answer {
            Some(a) => (Some(String::from_utf8_lossy(&a.body).into_owned()), Some(a.signature.clone())),
            None => (None, None),
        };
        json!({
            "admission": {
                "appId": self.app_id.as_str(),
                "credential": self.credential,
                "acp": acp,
                "enforced": self.enforced,
                "profile": body,
                "signature": signature,
            }
        })
    }

    /// The `pv`/`pvs` of the privacy policy for the AE's data, from `dataPrivacy`: the AE and the
    /// admin may do everything; the allowed recipients may read and discover (`sharing:
    /// restricted`), everyone may (`public`), nobody else may (`none`).
    pub fn privacy_acp(&self, stem: &str, admin: &str) -> Option<Value> {
        if !self.enforced {
            return None;
        }
        let record = self.record()?;
        let read = onem2m::Operation::Retrieve.acop_bit() | onem2m::ACOP_DISCOVERY;
        let mut acr = vec![json!({"acor": [stem, admin], "acop": onem2m::ACOP_ALL})];
        match record.data_privacy.sharing {
            Sharing::None => {}
            Sharing::Restricted if !record.data_privacy.allowed_recipients.is_empty() => {
                acr.push(json!({"acor": record.data_privacy.allowed_recipients, "acop": read}));
            }
            Sharing::Restricted => {}
            Sharing::Public => acr.push(json!({"acor": ["all"], "acop": read})),
        }
        Some(json!({
            "pv": {"acr": acr},
            "pvs": {"acr": [{"acor": [stem, admin], "acop": onem2m::ACOP_ALL}]},
        }))
    }
}

/// What the CSE gives an admitted AE's containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLimits {
    pub mni: Option<u64>,
    pub mbs: Option<u64>,
    pub mia: Option<u64>,
    /// The privacy policy, as default `acpi`.
    pub acp: Option<String>,
}

/// A token bucket: `capacity` requests at once, refilled at `capacity` per minute.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self { tokens: capacity, capacity, last: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.capacity / 60.0;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An admitted AE.
#[derive(Debug)]
struct AeState {
    app_id: AppId,
    credential: Option<String>,
    record: Option<Arc<Record>>,
    acp: Option<String>,
    enforced: bool,
    limiter: Option<Mutex<Bucket>>,
}

/// What a decision-log entry says besides who and when.
struct Verdict<'a> {
    outcome: &'a str,
    rsc: Rsc,
    reason: &'a str,
    rule: Option<String>,
    message: String,
}

/// The admission engine.
pub struct Admission {
    policy: Policy,
    profiles: Arc<Profiles>,
    log: DecisionLog,
    aes: RwLock<HashMap<String, Arc<AeState>>>,
    /// The AEs bound to each credential: a device certificate may serve several AEs of its App-ID
    /// (TS-0003 §8.2.1, "a list of allowed AE-IDs"), and speaks only for them.
    credentials: RwLock<HashMap<String, Vec<String>>>,
    schemas: Mutex<HashMap<(String, u64, String), Arc<jsonschema::Validator>>>,
}

fn refused(rej: &Rejection) -> Error {
    Error::new(rej.rsc, rej.message.clone())
}

fn count_refusal(reason: &'static str, enforced: bool) {
    let outcome = if enforced { "refused" } else { "audited" };
    metrics::counter!("warden_admission_request_refusals_total", "reason" => reason, "outcome" => outcome).increment(1);
}

impl Admission {
    pub fn new(policy: Policy, profiles: Arc<Profiles>, log: DecisionLog) -> Arc<Self> {
        Arc::new(Self {
            policy,
            profiles,
            log,
            aes: RwLock::new(HashMap::new()),
            credentials: RwLock::new(HashMap::new()),
            schemas: Mutex::new(HashMap::new()),
        })
    }

    pub fn mode(&self) -> Mode {
        self.policy.admission.mode
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn profiles(&self) -> &Arc<Profiles> {
        &self.profiles
    }

    pub fn decisions(&self) -> &DecisionLog {
        &self.log
    }

    fn enforcing(&self) -> bool {
        self.policy.admission.mode == Mode::Enforce
    }

    async fn record(&self, d: Decision) {
        metrics::counter!(
            "warden_admission_decisions_total",
            "outcome" => d.outcome.clone(),
            "reason" => d.reason.clone()
        )
        .increment(1);
        tracing::info!(ae = %d.ae_id, app_id = %d.app_id, outcome = %d.outcome, reason = %d.reason, "admission decision");
        if let Err(e) = self.log.append(d).await {
            tracing::error!(error = %e, "cannot record an admission decision");
        }
    }

    fn decision(&self, reg: &Registration<'_>, version: Option<u64>, v: Verdict<'_>) -> Decision {
        Decision {
            seq: 0,
            at: reg.now.to_string(),
            ae_id: reg.stem.to_owned(),
            app_id: reg.app_id.to_string(),
            profile_version: version,
            outcome: v.outcome.to_owned(),
            rsc: v.rsc.code(),
            reason: v.reason.to_owned(),
            rule: v.rule,
            message: v.message,
            mode: if self.enforcing() { "enforce" } else { "audit" }.to_owned(),
        }
    }

    /// Decides on an AE registration (DESIGN.md §7 steps 4–7). A rejection is recorded here; an
    /// admission is recorded by [`Admission::admitted`] once the AE exists.
    pub async fn decide(&self, reg: &Registration<'_>) -> Result<Grant, Error> {
        let (answer, verdict) = self.judge(reg).await;
        let version = answer.as_ref().and_then(|a| a.record.as_ref()).map(|r| r.version);
        let grant = |reason: &'static str, message: String| Grant {
            app_id: reg.app_id.clone(),
            credential: reg.sa.map(|sa| sa.credential_id.clone()),
            answer: answer.clone(),
            reason,
            message,
            enforced: self.enforcing(),
        };
        match verdict {
            Ok(reason) => Ok(grant(reason, "admitted".into())),
            Err(rej) => {
                let v = Verdict {
                    outcome: "rejected",
                    rsc: rej.rsc,
                    reason: rej.reason.as_str(),
                    rule: rej.rule.clone(),
                    message: rej.message.clone(),
                };
                let d = self.decision(reg, version, v);
                self.record(d).await;
                if self.enforcing() {
                    Err(refused(&rej))
                } else {
                    Ok(grant(
                        "audit_admitted",
                        format!("admitted in audit mode; enforcing would reject: {}", rej.message),
                    ))
                }
            }
        }
    }

    /// The profile and the verdict: `Ok(reason)` to admit.
    async fn judge(&self, reg: &Registration<'_>) -> (Option<Arc<Answer>>, Result<&'static str, Rejection>) {
        use Rsc::AppRuleValidationFailed as Refused;
        // Step 4: the certificate's claims must match the registration.
        if let Some(sa) = reg.sa {
            if sa.app_id.as_deref().is_some_and(|a| a != reg.app_id.as_str()) {
                let rej = Rejection::new(
                    Rsc::OriginatorNotAuthenticated,
                    Reason::ClaimMismatch,
                    format!(
                        "the certificate is for App-ID {}, not {}",
                        sa.app_id.as_deref().unwrap_or_default(),
                        reg.app_id
                    ),
                );
                return (None, Err(rej));
            }
        }
        if reg.app_id.kind() == AppIdKind::NonRegistered {
            return match self.policy.admission.unregistered {
                Unregistered::Admit => (None, Ok("unregistered_admitted")),
                Unregistered::Reject => (
                    None,
                    Err(Rejection::new(
                        Refused,
                        Reason::Unregistered,
                        format!("the non-registered App-ID {} is not admitted", reg.app_id),
                    )),
                ),
            };
        }
        let (answer, stale) = match self.profiles.lookup(reg.app_id).await {
            Lookup::Fresh(a) => (a, false),
            Lookup::Stale(a, _) if self.policy.admission.registry_unreachable == Unreachable::Cached => (a, true),
            Lookup::Stale(_, f) | Lookup::Failed(f) => return self.failed(reg, &f),
        };
        let Some(record) = answer.record.clone() else {
            let rej =
                Rejection::new(Refused, Reason::UnknownAppId, format!("the App-ID {} is not registered", reg.app_id));
            return (Some(answer), Err(rej));
        };
        let ev = Evidence {
            root_sha256: reg.sa.and_then(|sa| sa.root_sha256.as_deref()),
            ae_id: reg.stem,
            full_ae_ids: reg.full_ae_ids,
            binding: reg.binding,
        };
        let verdict = judge(&self.policy, &record, &ev).map(|()| if stale { "admitted_cached" } else { "admitted" });
        (Some(answer), verdict)
    }

    /// The registry gave no usable answer, and no cached profile may be used (none is, or the
    /// policy is not `cached`). An unreachable registry is decided by `registry_unreachable`; an
    /// answer that fails its checks (a forged or truncated one) is never admitted.
    fn failed(&self, reg: &Registration<'_>, f: &Failure) -> (Option<Arc<Answer>>, Result<&'static str, Rejection>) {
        let (reason, what, detail) = match f {
            Failure::Unreachable(m) => (Reason::RegistryUnreachable, "cannot be reached", m),
            Failure::Untrusted(m) => (Reason::BadSignature, "gave an untrustworthy answer", m),
        };
        if reason == Reason::RegistryUnreachable && self.policy.admission.registry_unreachable == Unreachable::Admit {
            return (None, Ok("admitted_unverified"));
        }
        let message = format!("the App-ID registry {what} about {} ({detail})", reg.app_id);
        (None, Err(Rejection::new(Rsc::RemoteEntityNotReachable, reason, message)))
    }

    /// Records a registration that the core refused because the client certificate's AE-ID does
    /// not match the request (DESIGN.md §7 step 4; the core checks it where it chooses the stem).
    pub async fn refused(&self, reg: &Registration<'_>, e: &Error) {
        let v = Verdict {
            outcome: "rejected",
            rsc: e.rsc,
            reason: Reason::ClaimMismatch.as_str(),
            rule: None,
            message: e.dbg.to_string(),
        };
        let d = self.decision(reg, None, v);
        self.record(d).await;
    }

    /// Records an admission and starts enforcing what it grants. Called once the AE is stored.
    pub async fn admitted(&self, reg: &Registration<'_>, grant: &Grant, acp: Option<&str>) {
        let version = grant.record().map(|r| r.version);
        let v = Verdict {
            outcome: "admitted",
            rsc: Rsc::Created,
            reason: grant.reason,
            rule: None,
            message: grant.message.clone(),
        };
        let d = self.decision(reg, version, v);
        self.record(d).await;
        self.activate(
            reg.stem,
            grant.app_id.clone(),
            grant.credential.clone(),
            grant.answer.clone(),
            acp.map(str::to_owned),
            grant.enforced,
        );
    }

    fn activate(
        &self,
        stem: &str,
        app_id: AppId,
        credential: Option<String>,
        answer: Option<Arc<Answer>>,
        acp: Option<String>,
        enforced: bool,
    ) {
        let record = answer.and_then(|a| a.record.clone());
        let limiter = record
            .as_ref()
            .and_then(|r| r.communications.max_requests_per_minute)
            .map(|rpm| Mutex::new(Bucket::new(rpm)));
        if let Some(c) = &credential {
            let mut creds = self.credentials.write();
            let aes = creds.entry(c.clone()).or_default();
            if !aes.iter().any(|a| a == stem) {
                aes.push(stem.to_owned());
            }
        }
        let state = AeState { app_id, credential, record, acp, enforced, limiter };
        self.aes.write().insert(stem.to_owned(), Arc::new(state));
    }

    /// Restores an admitted AE from the metadata stored with it (at start). The stored profile's
    /// signature is checked again, offline.
    pub fn restore(&self, ae: &Resource) {
        let Some(meta) = ae.meta.as_ref().and_then(|m| m.get("admission")) else { return };
        let Some(app_id) = meta
            .get("appId")
            .and_then(Value::as_str)
            .and_then(|a| AppId::parse_for_release(a, onem2m::ReleaseVersion::V3).ok())
        else {
            return;
        };
        let credential = meta.get("credential").and_then(Value::as_str).map(str::to_owned);
        let acp = meta.get("acp").and_then(Value::as_str).map(str::to_owned);
        let enforced = meta.get("enforced").and_then(Value::as_bool).unwrap_or(true);
        let answer = match (meta.get("profile").and_then(Value::as_str), meta.get("signature").and_then(Value::as_str))
        {
            (Some(body), Some(sig)) => match self.profiles.adopt(Bytes::from(body.to_owned()), sig.to_owned()) {
                Ok(a) => {
                    // The trust map knows this App-ID's roots before its devices reconnect.
                    self.profiles.learn(&app_id, &a);
                    Some(a)
                }
                Err(e) => {
                    tracing::warn!(ae = ae.ri(), error = %e, "the stored profile of an AE no longer verifies");
                    None
                }
            },
            _ => None,
        };
        self.activate(ae.ri(), app_id, credential, answer, acp, enforced);
    }

    /// Forgets a deleted AE.
    pub fn forget(&self, stem: &str) {
        if let Some(state) = self.aes.write().remove(stem)
            && let Some(c) = &state.credential
        {
            let mut creds = self.credentials.write();
            if let Some(aes) = creds.get_mut(c) {
                aes.retain(|a| a != stem);
                if aes.is_empty() {
                    creds.remove(c);
                }
            }
        }
    }

    /// The AE-IDs admitted under an App-ID.
    pub fn aes_of(&self, app_id: &AppId) -> Vec<String> {
        self.aes.read().iter().filter(|(_, s)| &s.app_id == app_id).map(|(k, _)| k.clone()).collect()
    }

    /// Checks a request of originator `orig` (DESIGN.md §7, after admission): the credential it is
    /// bound to, the App-ID's status, and the limits of its communications class.
    pub fn check(
        &self,
        orig: &str,
        sa: Option<&SecurityAssociation>,
        binding: &str,
        payload_len: usize,
    ) -> Result<(), Error> {
        // A credential bound to AEs speaks only for them (audited only, when they were admitted in
        // audit mode).
        let bound = sa.and_then(|sa| self.credentials.read().get(&sa.credential_id).cloned());
        if let Some(bound) = bound
            && !bound.iter().any(|a| a == orig)
        {
            let enforced = {
                let aes = self.aes.read();
                bound.iter().any(|a| aes.get(a).is_none_or(|s| s.enforced))
            };
            count_refusal("credential_mismatch", enforced);
            if enforced {
                return Err(Error::new(
                    Rsc::OriginatorNotAuthenticated,
                    format!("this certificate belongs to the AE {}, not to {orig}", bound.join(", ")),
                ));
            }
        }
        let Some(state) = self.aes.read().get(orig).cloned() else { return Ok(()) };
        let fail = |reason: &'static str, rsc: Rsc, msg: String| -> Result<(), Error> {
            count_refusal(reason, state.enforced);
            if state.enforced { Err(Error::new(rsc, msg)) } else { Ok(()) }
        };
        if let Some(cred) = &state.credential
            && sa.map(|s| &s.credential_id) != Some(cred)
        {
            let how = if sa.is_some() { "another certificate" } else { "no security association" };
            return fail(
                "credential_mismatch",
                Rsc::OriginatorNotAuthenticated,
                format!("the AE {orig} is bound to a client certificate; this request came with {how}"),
            );
        }
        if let Some(status) = self.profiles.blocked(&state.app_id) {
            let word = if status == Status::Revoked { "revoked" } else { "suspended" };
            return fail(
                if status == Status::Revoked { "revoked" } else { "suspended" },
                Rsc::AppRuleValidationFailed,
                format!("the App-ID {} is {word}", state.app_id),
            );
        }
        if let Some(r) = &state.record {
            if !r.communications.bindings.iter().any(|b| policy::binding_name(*b) == binding) {
                return fail(
                    "binding_not_allowed",
                    Rsc::AppRuleValidationFailed,
                    format!("the {binding} binding is not among the App-ID's bindings"),
                );
            }
            if let Some(max) = r.communications.max_payload_bytes
                && payload_len as u64 > max
            {
                return fail(
                    "payload_too_large",
                    Rsc::AppRuleValidationFailed,
                    format!("the request body ({payload_len} bytes) exceeds the App-ID's maxPayloadBytes ({max})"),
                );
            }
        }
        if let Some(l) = &state.limiter
            && !l.lock().take()
        {
            let rpm = state.record.as_ref().and_then(|r| r.communications.max_requests_per_minute).unwrap_or(0);
            return fail(
                "rate_limited",
                Rsc::AppRuleValidationFailed,
                format!("the App-ID's rate limit of {rpm} requests per minute is exceeded"),
            );
        }
        Ok(())
    }

    /// The limits and default policy of a container created under the admitted AE `owner`.
    pub fn container_limits(&self, owner: &str) -> Option<ContainerLimits> {
        let state = self.aes.read().get(owner).cloned()?;
        if !state.enforced {
            return None;
        }
        let record = state.record.as_ref()?;
        let quota = self.policy.quota(record.application.class);
        Some(ContainerLimits {
            mni: quota.mni,
            mbs: quota.mbs,
            mia: record.data_privacy.retention_days.map(|d| u64::from(d) * 86_400),
            acp: state.acp.clone(),
        })
    }

    /// The data-model check of a contentInstance in container `container_rn` of the admitted AE
    /// `owner` (4102 when it does not match).
    pub fn check_content(
        &self,
        owner: &str,
        container_rn: &str,
        cnf: Option<&str>,
        con: Option<&Value>,
    ) -> Result<(), Error> {
        let Some(state) = self.aes.read().get(owner).cloned() else { return Ok(()) };
        let Some(record) = state.record.as_ref() else { return Ok(()) };
        let Some(model) = record.data_model.containers.iter().find(|c| c.name == container_rn) else { return Ok(()) };
        let fail = |msg: String| -> Result<(), Error> {
            count_refusal("data_model", state.enforced);
            if state.enforced { Err(Error::new(Rsc::ContentsUnacceptable, msg)) } else { Ok(()) }
        };
        if let Some(want) = &model.content_info
            && cnf != Some(want.as_str())
        {
            return fail(format!(
                "the container {container_rn} takes content of type {want}, not {}",
                cnf.unwrap_or("(none)")
            ));
        }
        let Some(schema) = &model.schema else { return Ok(()) };
        let media = cnf.or(model.content_info.as_deref()).unwrap_or_default();
        let instance = if media.starts_with("application/json") {
            match con {
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    Ok(v) => v,
                    Err(e) => return fail(format!("the content is not JSON: {e}")),
                },
                Some(v) => v.clone(),
                None => Value::Null,
            }
        } else {
            con.cloned().unwrap_or(Value::Null)
        };
        let key = (state.app_id.to_string(), record.version, container_rn.to_owned());
        let validator = {
            let mut cache = self.schemas.lock();
            match cache.get(&key) {
                Some(v) => v.clone(),
                None => match jsonschema::validator_for(schema) {
                    Ok(v) => {
                        let v = Arc::new(v);
                        cache.insert(key, v.clone());
                        v
                    }
                    Err(e) => return fail(format!("the App-ID's schema for {container_rn} cannot be used: {e}")),
                },
            }
        };
        if let Err(e) = validator.validate(&instance) {
            return fail(format!("the content does not match the data model of {container_rn}: {e}"));
        }
        Ok(())
    }
}
