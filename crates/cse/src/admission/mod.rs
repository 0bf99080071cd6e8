//! Admission: vetting every AE registration against the App-ID Registry and the operator's policy,
//! assigning resources and limits to admitted AEs, and acting on revocations (DESIGN.md §7).
//!
//! The core asks this module at these points: at AE CREATE ([`Admission::decide`], then
//! [`Admission::admitted`] once the AE is stored, or [`Admission::refused_registration`] for a
//! registration the core itself refuses), before every request of an AE ([`Admission::check`]:
//! the certificate, the credential binding, revocation, binding, payload and rate limits), when an
//! admitted AE creates a container (quotas and the privacy policy) or a contentInstance (the data
//! model), and on every access check ([`Admission::privacy_allows`]: the privacy terms of the
//! profile are a ceiling over whatever `acpi` the AE sets). What must survive a restart — the
//! credential binding and the signed profile it was decided on — is stored with the AE resource
//! itself, in the same transaction.
//!
//! Every decision is written to the decision log and counted; refusals are written within the
//! bounds of [`refusals`], and every refusal is counted in the metrics.

pub mod policy;
pub mod profiles;
pub mod refusals;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use appid::profile::Sharing;
use appid::{Record, Status};
use bytes::Bytes;
use onem2m::{AppId, AppIdKind, Error, Rsc, Timestamp};
use parking_lot::{Mutex, RwLock};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::policy::{
    Certificate, Evidence, Mode, OnRevoke, Policy, Reason, Rejection, Unreachable, Unregistered, judge,
};
use self::profiles::{Answer, Failure, Lookup, Profiles};
use self::refusals::{Bucket, RefusalLog};
use crate::core::{Clock, SecurityAssociation};
use crate::resource::Resource;
use crate::store::decisions::{Decision, DecisionLog};
use crate::store::{TxOutcome, Write};

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

/// What the transport showed at admission, kept to decide again later (an AE admitted unverified).
#[derive(Debug, Clone, Default)]
struct Shown {
    root_sha256: Option<String>,
    binding: String,
    full_ae_ids: Vec<String>,
}

/// What an admission grants: the profile decided on and the credential bound to the AE.
#[derive(Debug, Clone)]
pub struct Grant {
    pub app_id: AppId,
    /// The verified client certificate's ID, bound to the AE.
    pub credential: Option<String>,
    pub answer: Option<Arc<Answer>>,
    /// The decision to record once the AE is stored.
    reason: &'static str,
    message: String,
    /// Enforced (resources assigned, requests checked) or only audited.
    enforced: bool,
    /// Admitted without a profile because the registry could not be asked: to be checked again.
    unverified: bool,
    shown: Shown,
    /// The AE's structured name (set by the core once it is known).
    srn: String,
}

impl Grant {
    pub fn record(&self) -> Option<&Record> {
        self.answer.as_ref().and_then(|a| a.record.as_deref())
    }

    /// Tells the grant where the AE lives (its structured name).
    pub fn set_srn(&mut self, srn: &str) {
        srn.clone_into(&mut self.srn);
    }

    /// The metadata stored with the AE resource. The signed answer is kept once, apart
    /// ([`Grant::answer_write`]); the metadata names it by its key.
    pub fn meta(&self, acp: Option<&str>) -> Value {
        json!({
            "admission": {
                "appId": self.app_id.as_str(),
                "credential": self.credential,
                "acp": acp,
                "enforced": self.enforced,
                "unverified": self.unverified,
                "root": self.shown.root_sha256,
                "binding": self.shown.binding,
                "fullAeIds": self.shown.full_ae_ids,
                "answer": self.answer.as_ref().map(|a| a.key.as_str()),
            }
        })
    }

    /// The write that keeps the signed answer admitted on, for the AE's transaction.
    pub fn answer_write(&self) -> Option<Write> {
        self.answer.as_ref().filter(|a| !a.kept.load(Ordering::Relaxed)).map(|a| Write::Answer {
            key: a.key.clone(),
            body: a.body.to_vec(),
            signature: a.signature.clone(),
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

/// An admitted AE.
#[derive(Debug)]
struct AeState {
    /// Shared with the keys of [`Admission::aes`] and [`Admission::by_srn`] (one allocation each).
    stem: Arc<str>,
    srn: Arc<str>,
    app_id: AppId,
    credential: Option<String>,
    record: Option<Arc<Record>>,
    acp: Option<String>,
    enforced: bool,
    limiter: Option<Mutex<Bucket>>,
    /// Restored at start: its App-ID's status is confirmed once the CSE caught up with the feed.
    restored: bool,
    /// Refused after all when it was checked again.
    rejected: Option<Box<Rejection>>,
    /// Set while the AE, admitted without a profile (registry unreachable, policy `admit`), waits
    /// to be checked again: what the transport showed, which that check judges. Nothing else reads
    /// it, and an admitted AE costs memory for as long as it lives.
    unverified: Option<Box<Shown>>,
}

/// What the registration's client certificate proved (the owned form of [`Certificate`]).
#[derive(Debug, Clone, Default)]
enum CertOutcome {
    #[default]
    None,
    /// It chained to the root with this SHA-256 (hex).
    Verified(String),
    Failed(Reason, String),
}

impl CertOutcome {
    fn view(&self) -> Certificate<'_> {
        match self {
            CertOutcome::None => Certificate::None,
            CertOutcome::Verified(r) => Certificate::Verified(r),
            CertOutcome::Failed(reason, m) => Certificate::Failed(*reason, m),
        }
    }
}

/// What a decision-log entry says besides who and when.
struct Verdict<'a> {
    outcome: &'a str,
    rsc: Rsc,
    reason: &'a str,
    rule: Option<String>,
    message: String,
}

/// What to do with an AE that was refused after it was admitted (deleted, when the policy says so).
type AeHook = Box<dyn Fn(String) + Send + Sync>;

/// The admission engine.
pub struct Admission {
    policy: Policy,
    profiles: Arc<Profiles>,
    log: DecisionLog,
    refusals: RefusalLog,
    aes: RwLock<HashMap<Arc<str>, Arc<AeState>>>,
    /// The same AEs by structured name, for the privacy check of their resources.
    by_srn: RwLock<HashMap<Arc<str>, Arc<AeState>>>,
    /// The AEs bound to each credential: a device certificate may serve several AEs of its App-ID
    /// (TS-0003 §8.2.1, "a list of allowed AE-IDs"), and speaks only for them.
    credentials: RwLock<HashMap<String, HashSet<Arc<str>>>>,
    schemas: Mutex<HashMap<(String, u64, String), Arc<jsonschema::Validator>>>,
    on_reject: Mutex<Option<AeHook>>,
}

fn refused(rej: &Rejection) -> Error {
    Error::new(rej.rsc, rej.message.clone())
}

fn count_refusal(reason: &str, enforced: bool) {
    let outcome = if enforced { "refused" } else { "audited" };
    metrics::counter!("warden_admission_request_refusals_total", "reason" => reason.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// The policy reason of a certificate that did not verify.
fn cert_reason(label: &str) -> Reason {
    match label {
        "wrong_root" => Reason::WrongRoot,
        "expired" => Reason::Expired,
        "not_yet_valid" => Reason::NotYetValid,
        "no_app_id" => Reason::NoAppIdClaim,
        "unknown_app_id" => Reason::UnknownAppId,
        _ => Reason::BadCertificate,
    }
}

/// The AE part (`<cse>/<ae>`) of a structured name.
fn ae_srn(srn: &str) -> &str {
    match srn.match_indices('/').nth(1) {
        Some((i, _)) => &srn[..i],
        None => srn,
    }
}

/// A refusal found by [`Admission::check`].
struct Refusal {
    reason: &'static str,
    rsc: Rsc,
    message: String,
}

impl Admission {
    pub fn new(policy: Policy, profiles: Arc<Profiles>, log: DecisionLog) -> Arc<Self> {
        Arc::new(Self {
            policy,
            profiles,
            log,
            refusals: RefusalLog::default(),
            aes: RwLock::new(HashMap::new()),
            by_srn: RwLock::new(HashMap::new()),
            credentials: RwLock::new(HashMap::new()),
            schemas: Mutex::new(HashMap::new()),
            on_reject: Mutex::new(None),
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

    /// Registers what to do with the AE-ID of an AE refused after it was admitted (with
    /// `on_revoke = "delete"`: delete it).
    pub fn on_reject(&self, f: impl Fn(String) + Send + Sync + 'static) {
        *self.on_reject.lock() = Some(Box::new(f));
    }

    fn enforcing(&self) -> bool {
        self.policy.admission.mode == Mode::Enforce
    }

    fn mode_name(&self) -> &'static str {
        if self.enforcing() { "enforce" } else { "audit" }
    }

    /// Counts and traces a decision (what every decision gets besides its log entry).
    fn announce(ae: &str, app_id: &str, outcome: metrics::SharedString, reason: metrics::SharedString) {
        tracing::info!(ae, app_id, outcome = &*outcome, reason = &*reason, "admission decision");
        metrics::counter!("warden_admission_decisions_total", "outcome" => outcome, "reason" => reason).increment(1);
    }

    async fn record(&self, d: Decision) {
        Self::announce(&d.ae_id, &d.app_id, d.outcome.clone().into(), d.reason.clone().into());
        if let Err(e) = self.log.append(d).await {
            tracing::error!(error = %e, "cannot record an admission decision");
        }
    }

    /// Records a refused registration within the log's bounds (counted in the metrics always).
    async fn record_rejection(&self, d: Decision) {
        match self.refusals.registration(&d.app_id, &d.reason) {
            Some(count) => self.record(Decision { count, ..d }).await,
            None => {
                metrics::counter!("warden_admission_decisions_total", "outcome" => "rejected", "reason" => d.reason)
                    .increment(1);
            }
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
            mode: self.mode_name().to_owned(),
            stage: "registration".to_owned(),
            count: 1,
        }
    }

    /// Decides on an AE registration (DESIGN.md §7 steps 4–7). A rejection is recorded here; an
    /// admission is recorded by [`Admission::admitted`] once the AE exists.
    pub async fn decide(&self, reg: &Registration<'_>) -> Result<Grant, Error> {
        let (answer, verdict, cert) = self.judge(reg).await;
        let version = answer.as_ref().and_then(|a| a.record.as_ref()).map(|r| r.version);
        let root = match cert {
            CertOutcome::Verified(r) => Some(r),
            _ => None,
        };
        // Only a certificate that verified is bound to the AE.
        let credential = root.as_ref().and(reg.sa.map(|sa| sa.credential_id.clone()));
        let grant = |reason: &'static str, message: String| Grant {
            app_id: reg.app_id.clone(),
            credential: credential.clone(),
            answer: answer.clone(),
            reason,
            message,
            enforced: self.enforcing(),
            unverified: reason == "admitted_unverified",
            shown: Shown {
                root_sha256: root.clone(),
                binding: reg.binding.to_owned(),
                full_ae_ids: reg.full_ae_ids.to_vec(),
            },
            srn: String::new(),
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
                self.record_rejection(d).await;
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

    /// The profile, the verdict (`Ok(reason)` to admit) and what the certificate proved.
    async fn judge(
        &self,
        reg: &Registration<'_>,
    ) -> (Option<Arc<Answer>>, Result<&'static str, Rejection>, CertOutcome) {
        use Rsc::AppRuleValidationFailed as Refused;
        // Step 4: the certificate's claims must match the registration.
        if let Some(sa) = reg.sa
            && let Some(claimed) = sa.app_id.as_deref()
            && claimed != reg.app_id.as_str()
        {
            let rej = Rejection::new(
                Rsc::OriginatorNotAuthenticated,
                Reason::ClaimMismatch,
                format!("the certificate is for App-ID {claimed}, not {}", reg.app_id),
            );
            return (None, Err(rej), CertOutcome::None);
        }
        let unverified = reg.sa.and_then(|sa| sa.unverified.as_ref());
        let cert_failed = |u: &crate::core::Unverified| {
            Rejection::new(
                Rsc::OriginatorNotAuthenticated,
                cert_reason(u.reason),
                format!("the client certificate does not verify: {}", u.message),
            )
        };
        if reg.app_id.kind() == AppIdKind::NonRegistered {
            return match (self.policy.admission.unregistered, unverified) {
                (Unregistered::Admit, None) => (None, Ok("unregistered_admitted"), CertOutcome::None),
                (Unregistered::Admit, Some(u)) => (None, Err(cert_failed(u)), CertOutcome::None),
                (Unregistered::Reject, _) => (
                    None,
                    Err(Rejection::new(
                        Refused,
                        Reason::Unregistered,
                        format!("the non-registered App-ID {} is not admitted", reg.app_id),
                    )),
                    CertOutcome::None,
                ),
            };
        }
        let (answer, stale) = match self.profiles.lookup(reg.app_id).await {
            Lookup::Fresh(a) => (a, false),
            Lookup::Stale(a, _) if self.policy.admission.registry_unreachable == Unreachable::Cached => (a, true),
            Lookup::Stale(_, f) | Lookup::Failed(f) => {
                let (a, v) = self.failed(reg, &f);
                return (a, v, CertOutcome::None);
            }
        };
        let Some(record) = answer.record.clone() else {
            let rej =
                Rejection::new(Refused, Reason::UnknownAppId, format!("the App-ID {} is not registered", reg.app_id));
            return (Some(answer), Err(rej), CertOutcome::None);
        };
        let cert = match (reg.sa, unverified) {
            (None, _) => CertOutcome::None,
            (Some(sa), None) => match &sa.root_sha256 {
                Some(r) => CertOutcome::Verified(r.clone()),
                None => CertOutcome::None,
            },
            // The certificate did not verify against the trust map as it was: check it again
            // against the signed profile's roots (the map may not have known the App-ID yet).
            (Some(_), Some(u)) => self.verify_late(reg.app_id, &record, u),
        };
        let ev = Evidence { cert: cert.view(), ae_id: reg.stem, full_ae_ids: reg.full_ae_ids, binding: reg.binding };
        let verdict = judge(&self.policy, &record, &ev).map(|()| if stale { "admitted_cached" } else { "admitted" });
        (Some(answer), verdict, cert)
    }

    /// Checks a certificate that did not verify at the handshake against `record`'s roots,
    /// teaching the trust map the roots of a registered App-ID it did not know.
    fn verify_late(&self, app_id: &AppId, record: &Record, u: &crate::core::Unverified) -> CertOutcome {
        let failed = CertOutcome::Failed;
        let Some(trust) = self.profiles.trust() else {
            return failed(cert_reason(u.reason), format!("the client certificate does not verify: {}", u.message));
        };
        if !trust.contains(app_id) {
            self.profiles.learn_roots(app_id, Some(record));
        }
        let chain: Vec<CertificateDer<'_>> = u.chain.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        match trust.identify(&chain, UnixTime::now()) {
            Ok(id) => CertOutcome::Verified(id.root_sha256.to_hex()),
            Err(crate::tls::IdentityError::UnknownAppId(a)) => failed(
                Reason::WrongRoot,
                format!("the App-ID {a} has no roots (its profile does not authenticate devices by certificate)"),
            ),
            Err(e) => failed(cert_reason(e.reason()), format!("the client certificate does not verify: {e}")),
        }
    }

    /// The registry gave no usable answer, and no cached profile may be used (none is, or the
    /// policy is not `cached`). An unreachable registry is decided by `registry_unreachable`; an
    /// answer that fails its checks (a forged or truncated one) is never admitted, nor is anything
    /// when the registry refuses the CSE's token or request (a configuration error).
    fn failed(&self, reg: &Registration<'_>, f: &Failure) -> (Option<Arc<Answer>>, Result<&'static str, Rejection>) {
        let (reason, what) = match f {
            Failure::Unreachable(m) if m == profiles::TIMED_OUT => {
                (Reason::RegistryUnreachable, "did not answer in time")
            }
            Failure::Unreachable(_) => (Reason::RegistryUnreachable, "cannot be reached"),
            Failure::Untrusted(_) => (Reason::BadSignature, "gave an untrustworthy answer"),
            Failure::Auth(_) => (Reason::RegistryAuth, "refused the CSE's credentials (its read token)"),
            Failure::Rejected(_) => (Reason::RegistryError, "refused the CSE's request"),
        };
        if reason == Reason::RegistryUnreachable && self.policy.admission.registry_unreachable == Unreachable::Admit {
            // No certificate can be checked without the profile: a presented one that failed is
            // still refused.
            if let Some(u) = reg.sa.and_then(|sa| sa.unverified.as_ref()) {
                let rej = Rejection::new(
                    Rsc::OriginatorNotAuthenticated,
                    cert_reason(u.reason),
                    format!("the client certificate does not verify: {}", u.message),
                );
                return (None, Err(rej));
            }
            return (None, Ok("admitted_unverified"));
        }
        // The details (addresses, the registry's own words) are for the operator's log, not for
        // the client's m2m:dbg nor the decision log it may read about itself.
        tracing::warn!(app_id = %reg.app_id, reason = f.reason(), detail = f.message(), "registry lookup failed");
        let message = format!("the App-ID registry {what} about {}", reg.app_id);
        (None, Err(Rejection::new(Rsc::RemoteEntityNotReachable, reason, message)))
    }

    /// Records a registration that the core refused before admission decided (a claim that does
    /// not match, an invalid `api`, an AE-ID registered already, ...). `app_id` is the `api` as
    /// given (it may not be a valid App-ID).
    pub async fn refused_registration(&self, ae: &str, app_id: &str, reason: Reason, e: &Error, now: Timestamp) {
        let d = Decision {
            seq: 0,
            at: now.to_string(),
            ae_id: ae.to_owned(),
            app_id: app_id.to_owned(),
            profile_version: None,
            outcome: "rejected".to_owned(),
            rsc: e.rsc.code(),
            reason: reason.as_str().to_owned(),
            rule: None,
            message: e.dbg.to_string(),
            mode: self.mode_name().to_owned(),
            stage: "registration".to_owned(),
            count: 1,
        };
        self.record_rejection(d).await;
    }

    /// The decision-log entry of an admission, for the transaction that stores the AE.
    pub fn admission_entry(&self, reg: &Registration<'_>, grant: &Grant) -> Write {
        let version = grant.record().map(|r| r.version);
        let v = Verdict {
            outcome: "admitted",
            rsc: Rsc::Created,
            reason: grant.reason,
            rule: None,
            message: grant.message.clone(),
        };
        DecisionLog::entry(self.decision(reg, version, v))
    }

    /// Counts an admission whose AE (and entry, [`Admission::admission_entry`]) the transaction
    /// `out` stored, and starts enforcing what it grants.
    pub async fn admitted(&self, reg: &Registration<'_>, grant: &Grant, acp: Option<&str>, out: &TxOutcome) {
        // Static labels: the counter's key is found without an allocation.
        Self::announce(reg.stem, reg.app_id.as_str(), "admitted".into(), grant.reason.into());
        self.log.appended(out).await;
        if let Some(a) = &grant.answer {
            a.kept.store(true, Ordering::Relaxed);
        }
        let record = grant.answer.as_ref().and_then(|a| a.record.clone());
        self.activate(AeState {
            stem: reg.stem.into(),
            srn: grant.srn.as_str().into(),
            app_id: grant.app_id.clone(),
            credential: grant.credential.clone(),
            limiter: limiter(record.as_deref()),
            record,
            acp: acp.map(str::to_owned),
            enforced: grant.enforced,
            restored: false,
            rejected: None,
            unverified: grant.unverified.then(|| Box::new(grant.shown.clone())),
        });
    }

    fn activate(&self, state: AeState) {
        self.activate_if(None, state);
    }

    /// Starts enforcing `state`; with `replacing`, only if that is still the AE's state (an AE
    /// deleted meanwhile, or decided on again, stays as it is). The maps are changed under the
    /// lock of `aes`, taken first, as [`Admission::forget`] does.
    fn activate_if(&self, replacing: Option<&Arc<AeState>>, state: AeState) -> bool {
        let mut aes = self.aes.write();
        if let Some(old) = replacing
            && !aes.get(&old.stem).is_some_and(|cur| Arc::ptr_eq(cur, old))
        {
            return false;
        }
        if let Some(c) = &state.credential {
            let mut creds = self.credentials.write();
            creds.entry(c.clone()).or_default().insert(state.stem.clone());
        }
        self.profiles.watch(&state.app_id);
        let state = Arc::new(state);
        if !state.srn.is_empty() {
            self.by_srn.write().insert(Arc::clone(&state.srn), state.clone());
        }
        aes.insert(Arc::clone(&state.stem), state);
        true
    }

    /// The key of the kept answer an AE was admitted on (see [`Grant::answer_write`]).
    pub fn answer_key(ae: &Resource) -> Option<&str> {
        ae.meta.as_ref()?.get("admission")?.get("answer")?.as_str()
    }

    /// A kept answer, its signature checked again (offline, at start); `None` when it no longer
    /// verifies.
    pub fn adopt_kept(&self, body: Vec<u8>, signature: String) -> Option<Arc<Answer>> {
        self.profiles
            .adopt(Bytes::from(body), signature)
            .inspect(|a| a.kept.store(true, Ordering::Relaxed))
            .inspect_err(|e| tracing::warn!(error = %e, "a kept registry answer no longer verifies"))
            .ok()
    }

    /// Restores an admitted AE from the metadata stored with it (at start), with the answer it was
    /// admitted on (kept apart, [`Admission::answer_key`], or, in the metadata of AEs stored before
    /// answers were kept apart, inline). The answer's roots go into the trust map, so that its
    /// device is identified at once; its status is not taken from the stored record (the feed,
    /// followed from the stored position, says whether it changed meanwhile).
    pub fn restore(&self, ae: &Resource, kept: Option<Arc<Answer>>) {
        let Some(meta) = ae.meta.as_ref().and_then(|m| m.get("admission")) else { return };
        let Some(app_id) = meta
            .get("appId")
            .and_then(Value::as_str)
            .and_then(|a| AppId::parse_for_release(a, onem2m::ReleaseVersion::V3).ok())
        else {
            return;
        };
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        let answer = kept.or_else(|| match (text("profile"), text("signature")) {
            (Some(body), Some(sig)) => self
                .profiles
                .adopt(Bytes::from(body), sig)
                .inspect_err(
                    |e| tracing::warn!(ae = ae.ri(), error = %e, "the stored profile of an AE no longer verifies"),
                )
                .ok(),
            _ => None,
        });
        if let Some(a) = &answer {
            self.profiles.learn_roots(&app_id, a.record.as_deref());
        }
        let record = answer.and_then(|a| a.record.clone());
        let unverified = meta.get("unverified").and_then(Value::as_bool).unwrap_or(false).then(|| {
            let full_ae_ids = meta
                .get("fullAeIds")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            Box::new(Shown {
                root_sha256: text("root"),
                binding: text("binding").unwrap_or_else(|| "http".into()),
                full_ae_ids,
            })
        });
        self.activate(AeState {
            stem: ae.ri().into(),
            srn: ae.srn.as_str().into(),
            app_id,
            credential: text("credential"),
            limiter: limiter(record.as_deref()),
            record,
            acp: text("acp"),
            enforced: meta.get("enforced").and_then(Value::as_bool).unwrap_or(true),
            restored: true,
            rejected: None,
            unverified,
        });
    }

    /// Forgets a deleted AE.
    pub fn forget(&self, stem: &str) {
        let mut aes = self.aes.write();
        let Some(state) = aes.remove(stem) else { return };
        self.by_srn.write().remove(&state.srn);
        if let Some(c) = &state.credential {
            let mut creds = self.credentials.write();
            if let Some(aes) = creds.get_mut(c) {
                aes.remove(stem);
                if aes.is_empty() {
                    creds.remove(c);
                }
            }
        }
    }

    /// The AE-IDs admitted under an App-ID.
    pub fn aes_of(&self, app_id: &AppId) -> Vec<String> {
        self.aes.read().iter().filter(|(_, s)| &s.app_id == app_id).map(|(k, _)| k.to_string()).collect()
    }

    /// Checks a request of originator `orig` (DESIGN.md §7, after admission): the certificate, the
    /// credential it is bound to, the App-ID's status, and the limits of its communications class.
    /// Every check is made (in audit mode each failing one is counted); in enforce mode the first
    /// refusal is the answer. Refusals are counted, and written to the decision log within its
    /// bounds.
    pub async fn check(
        &self,
        orig: &str,
        sa: Option<&SecurityAssociation>,
        binding: &str,
        payload_len: usize,
    ) -> Result<(), Error> {
        let state = self.aes.read().get(orig).cloned();
        let mut found: Vec<Refusal> = Vec::new();
        // A certificate that did not verify proves nothing: refused whoever it claims to be.
        if let Some(u) = sa.and_then(|sa| sa.unverified.as_ref()) {
            found.push(Refusal {
                reason: cert_reason(u.reason).as_str(),
                rsc: Rsc::OriginatorNotAuthenticated,
                message: format!("the client certificate does not verify: {}", u.message),
            });
        }
        // A credential bound to AEs speaks only for them.
        // (Looked up in place: a device certificate may serve many AEs. The locks are taken in the
        // order `activate_if` and `forget` take them: the AEs, then the credentials.)
        let (mut bound_enforced, mut credential_bound) = (false, false);
        if let Some(sa) = sa {
            let aes = self.aes.read();
            let creds = self.credentials.read();
            if let Some(bound) = creds.get(&sa.credential_id) {
                credential_bound = true;
                if !bound.contains(orig) {
                    bound_enforced = bound.iter().any(|a| aes.get(a).is_none_or(|s| s.enforced));
                    let mut named: Vec<&str> = bound.iter().take(3).map(|a| &**a).collect();
                    named.sort_unstable();
                    let more = bound.len() - named.len();
                    let also = if more > 0 { format!(" and {more} more") } else { String::new() };
                    let message =
                        format!("this certificate belongs to the AE {}{also}, not to {orig}", named.join(", "));
                    found.push(Refusal {
                        reason: "credential_mismatch",
                        rsc: Rsc::OriginatorNotAuthenticated,
                        message,
                    });
                }
            }
        }
        if let Some(state) = &state {
            self.check_state(state, sa, binding, payload_len, &mut found);
        }
        if found.is_empty() {
            return Ok(());
        }
        // Enforced unless everything involved was admitted in audit mode.
        let enforced = match &state {
            Some(s) => s.enforced || bound_enforced,
            None => !credential_bound || bound_enforced,
        };
        let enforced = enforced && self.enforcing();
        let app_id = state
            .as_ref()
            .map(|s| s.app_id.to_string())
            .or_else(|| sa.and_then(|sa| sa.app_id.clone()))
            .unwrap_or_default();
        let version = state.as_ref().and_then(|s| s.record.as_ref()).map(|r| r.version);
        for r in &found {
            count_refusal(r.reason, enforced);
            self.log_request_refusal(orig, &app_id, version, r, enforced).await;
            if enforced {
                break;
            }
        }
        if enforced { Err(Error::new(found[0].rsc, found[0].message.clone())) } else { Ok(()) }
    }

    /// The checks of an admitted AE's own state.
    fn check_state(
        &self,
        state: &AeState,
        sa: Option<&SecurityAssociation>,
        binding: &str,
        payload_len: usize,
        found: &mut Vec<Refusal>,
    ) {
        let orig = &state.stem;
        if let Some(cred) = &state.credential
            && sa.filter(|s| s.unverified.is_none()).map(|s| &s.credential_id) != Some(cred)
        {
            let how = if sa.is_some() { "another certificate" } else { "no security association" };
            found.push(Refusal {
                reason: "credential_mismatch",
                rsc: Rsc::OriginatorNotAuthenticated,
                message: format!("the AE {orig} is bound to a client certificate; this request came with {how}"),
            });
        }
        if let Some(status) = self.profiles.blocked(&state.app_id) {
            let word = if status == Status::Revoked { "revoked" } else { "suspended" };
            found.push(Refusal {
                reason: word,
                rsc: Rsc::AppRuleValidationFailed,
                message: format!("the App-ID {} is {word}", state.app_id),
            });
        }
        if let Some(rej) = &state.rejected {
            found.push(Refusal {
                reason: rej.reason.as_str(),
                rsc: rej.rsc,
                message: format!("the AE was admitted while the registry was unreachable; now: {}", rej.message),
            });
        }
        if state.restored
            && !self.profiles.caught_up()
            && self.policy.admission.registry_unreachable == Unreachable::Reject
        {
            found.push(Refusal {
                reason: "registry_unreachable",
                rsc: Rsc::RemoteEntityNotReachable,
                message: format!(
                    "the status of the App-ID {} cannot be confirmed: the registry cannot be reached",
                    state.app_id
                ),
            });
        }
        if let Some(r) = &state.record {
            if !r.communications.bindings.iter().any(|b| policy::binding_name(*b) == binding) {
                found.push(Refusal {
                    reason: "binding_not_allowed",
                    rsc: Rsc::AppRuleValidationFailed,
                    message: format!("the {binding} binding is not among the App-ID's bindings"),
                });
            }
            if let Some(max) = r.communications.max_payload_bytes
                && payload_len as u64 > max
            {
                found.push(Refusal {
                    reason: "payload_too_large",
                    rsc: Rsc::AppRuleValidationFailed,
                    message: format!(
                        "the request body ({payload_len} bytes) exceeds the App-ID's maxPayloadBytes ({max})"
                    ),
                });
            }
        }
        if let Some(l) = &state.limiter
            && !l.lock().take(tokio::time::Instant::now())
        {
            let rpm = state.record.as_ref().and_then(|r| r.communications.max_requests_per_minute).unwrap_or(0);
            found.push(Refusal {
                reason: "rate_limited",
                rsc: Rsc::AppRuleValidationFailed,
                message: format!("the App-ID's rate limit of {rpm} requests per minute is exceeded"),
            });
        }
    }

    async fn log_request_refusal(&self, orig: &str, app_id: &str, version: Option<u64>, r: &Refusal, enforced: bool) {
        let Some(count) = self.refusals.request(orig, r.reason) else { return };
        let now = crate::core::SystemClock.now();
        let d = Decision {
            seq: 0,
            at: now.to_string(),
            ae_id: orig.to_owned(),
            app_id: app_id.to_owned(),
            profile_version: version,
            outcome: "rejected".to_owned(),
            rsc: r.rsc.code(),
            reason: r.reason.to_owned(),
            rule: None,
            message: r.message.clone(),
            mode: if enforced { "enforce" } else { "audit" }.to_owned(),
            stage: "request".to_owned(),
            count,
        };
        if let Err(e) = self.log.append(d).await {
            tracing::error!(error = %e, "cannot record a refusal");
        }
    }

    /// Whether `orig` may do `bit` on the resource at `srn` as far as the privacy terms of the
    /// profile of the AE it belongs to are concerned: reading and discovering (`Retrieve` and
    /// discovery) are for the AE itself and, by `sharing`, the allowed recipients (`restricted`)
    /// or everyone (`public`), whatever `acpi` the AE gave its resources. The caller checks the
    /// resource's own access control as well, and lets the admin and the CSE through before.
    pub fn privacy_allows(&self, srn: &str, orig: &str, bit: u32) -> bool {
        let read = onem2m::Operation::Retrieve.acop_bit() | onem2m::ACOP_DISCOVERY;
        if bit & read == 0 {
            return true;
        }
        let Some(state) = self.by_srn.read().get(ae_srn(srn)).cloned() else { return true };
        if !state.enforced || orig == &*state.stem {
            return true;
        }
        let Some(record) = &state.record else { return true };
        let p = &record.data_privacy;
        match p.sharing {
            Sharing::Public => true,
            Sharing::None => false,
            Sharing::Restricted => p
                .allowed_recipients
                .iter()
                .any(|r| r == "all" || r == orig || (r.contains(['*', '?']) && onem2m::id::wildcard_match(r, orig))),
        }
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
    /// `owner` (4102 when it does not match). A refusal is counted and logged like the others.
    pub async fn check_content(
        &self,
        owner: &str,
        container_rn: &str,
        cnf: Option<&str>,
        con: Option<&Value>,
    ) -> Result<(), Error> {
        let Some(state) = self.aes.read().get(owner).cloned() else { return Ok(()) };
        let Err(message) = self.content_matches(&state, container_rn, cnf, con) else { return Ok(()) };
        let enforced = state.enforced && self.enforcing();
        let r = Refusal { reason: "data_model", rsc: Rsc::ContentsUnacceptable, message };
        count_refusal(r.reason, enforced);
        let version = state.record.as_ref().map(|r| r.version);
        self.log_request_refusal(owner, state.app_id.as_str(), version, &r, enforced).await;
        if enforced { Err(Error::new(r.rsc, r.message)) } else { Ok(()) }
    }

    fn content_matches(
        &self,
        state: &AeState,
        container_rn: &str,
        cnf: Option<&str>,
        con: Option<&Value>,
    ) -> Result<(), String> {
        let Some(record) = state.record.as_ref() else { return Ok(()) };
        let Some(model) = record.data_model.containers.iter().find(|c| c.name == container_rn) else { return Ok(()) };
        if let Some(want) = &model.content_info
            && cnf != Some(want.as_str())
        {
            return Err(format!(
                "the container {container_rn} takes content of type {want}, not {}",
                cnf.unwrap_or("(none)")
            ));
        }
        let Some(schema) = &model.schema else { return Ok(()) };
        let media = cnf.or(model.content_info.as_deref()).unwrap_or_default();
        let instance = if media.starts_with("application/json") {
            match con {
                Some(Value::String(s)) => {
                    serde_json::from_str::<Value>(s).map_err(|e| format!("the content is not JSON: {e}"))?
                }
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
                None => {
                    let v = Arc::new(
                        jsonschema::validator_for(schema)
                            .map_err(|e| format!("the App-ID's schema for {container_rn} cannot be used: {e}"))?,
                    );
                    cache.insert(key, v.clone());
                    v
                }
            }
        };
        validator
            .validate(&instance)
            .map_err(|e| format!("the content does not match the data model of {container_rn}: {e}"))
    }

    /// Checks again, every `reverify_seconds` until cancelled, the AEs admitted while the registry
    /// could not be reached: once it answers, each gets the limits of its profile, or is refused
    /// (and deleted, with `on_revoke = "delete"`) if the policy would have rejected it.
    pub async fn reverify(self: Arc<Self>, cancel: CancellationToken) {
        let every = Duration::from_secs(self.policy.admission.reverify_seconds);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            self.reverify_once().await;
        }
    }

    /// One round of [`Admission::reverify`]; how many AEs are still unverified.
    pub async fn reverify_once(&self) -> usize {
        let pending: Vec<Arc<AeState>> = self.aes.read().values().filter(|s| s.unverified.is_some()).cloned().collect();
        let mut by_app: HashMap<AppId, Vec<Arc<AeState>>> = HashMap::new();
        for s in pending {
            by_app.entry(s.app_id.clone()).or_default().push(s);
        }
        let mut left = 0;
        for (app_id, states) in by_app {
            let answer = match self.profiles.lookup(&app_id).await {
                Lookup::Fresh(a) => a,
                _ => {
                    left += states.len();
                    continue;
                }
            };
            for s in states {
                self.settle(&s, &answer).await;
            }
        }
        left
    }

    /// Decides on an AE admitted unverified, now that the profile is known.
    async fn settle(&self, s: &Arc<AeState>, answer: &Arc<Answer>) {
        if !self.aes.read().get(&s.stem).is_some_and(|cur| Arc::ptr_eq(cur, s)) {
            return; // deleted (or decided on) since the round began
        }
        let Some(shown) = s.unverified.as_deref() else { return };
        let verdict = match &answer.record {
            None => Err(Rejection::new(
                Rsc::AppRuleValidationFailed,
                Reason::UnknownAppId,
                format!("the App-ID {} is not registered", s.app_id),
            )),
            Some(record) => {
                let cert = shown.root_sha256.as_deref().map_or(Certificate::None, Certificate::Verified);
                let ev = Evidence { cert, ae_id: &s.stem, full_ae_ids: &shown.full_ae_ids, binding: &shown.binding };
                judge(&self.policy, record, &ev)
            }
        };
        let record = answer.record.clone();
        let (outcome, rsc, reason, message, rule) = match &verdict {
            Ok(()) => ("admitted", Rsc::Created, "verified_later", "the registry answered: admitted".to_owned(), None),
            Err(rej) => ("rejected", rej.rsc, rej.reason.as_str(), rej.message.clone(), rej.rule.clone()),
        };
        let now = crate::core::SystemClock.now();
        self.record(Decision {
            seq: 0,
            at: now.to_string(),
            ae_id: s.stem.to_string(),
            app_id: s.app_id.to_string(),
            profile_version: record.as_ref().map(|r| r.version),
            outcome: outcome.to_owned(),
            rsc: rsc.code(),
            reason: reason.to_owned(),
            rule,
            message: format!("checked again after an admission without the registry: {message}"),
            mode: self.mode_name().to_owned(),
            stage: "registration".to_owned(),
            count: 1,
        })
        .await;
        let rejected = verdict.err().filter(|_| s.enforced).map(Box::new);
        let delete = rejected.is_some() && self.policy.admission.on_revoke == OnRevoke::Delete;
        let settled = AeState {
            stem: Arc::clone(&s.stem),
            srn: Arc::clone(&s.srn),
            app_id: s.app_id.clone(),
            credential: s.credential.clone(),
            limiter: limiter(record.as_deref()),
            record,
            acp: s.acp.clone(),
            enforced: s.enforced,
            restored: s.restored,
            rejected,
            unverified: None,
        };
        if !self.activate_if(Some(s), settled) {
            return;
        }
        if delete && let Some(f) = self.on_reject.lock().as_ref() {
            f(s.stem.to_string());
        }
    }
}

/// The per-AE rate limiter of a profile: `maxRequestsPerMinute` at once, refilled over a minute.
fn limiter(record: Option<&Record>) -> Option<Mutex<Bucket>> {
    let rpm = f64::from(record?.communications.max_requests_per_minute?.max(1));
    Some(Mutex::new(Bucket::new(rpm, rpm / 60.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every admitted AE keeps an `AeState` for as long as it lives: a million devices hold a
    /// million of them. What only some AEs need (a later rejection, what the transport showed to an
    /// AE admitted unverified) is boxed.
    #[test]
    fn an_admitted_aes_state_stays_small() {
        let size = size_of::<AeState>();
        assert!(size <= 192, "AeState is {size} bytes");
    }
}
