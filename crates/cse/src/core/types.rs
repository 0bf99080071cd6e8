//! The rules of each resource type: AE registration, container quotas, contentInstance size,
//! subscription criteria and verification, access control policies, groups, remote CSEs, and the
//! CSEBase with its default policy.

use onem2m::{
    AppId, CseType, Error, NotificationContentType, NotificationEventType, Operation, Originator, ReleaseVersion,
    ResourceType, Rsc, Serialization, Timestamp,
};
use serde_json::{Map, Value, json};

use super::access::validate_privileges;
use super::{Cse, Ctx, NotifyTarget, Orig, Target, ids, store_error};
use crate::admission::Registration;
use crate::resource::Resource;
use crate::store::{Tx, Write};

/// A prepared AE registration: the AE, the privacy policy created with it, and the grant.
pub(crate) struct NewAe {
    pub(crate) res: Resource,
    pub(crate) acp: Option<Resource>,
    pub(crate) grant: Option<crate::admission::Grant>,
    pub(crate) app_id: AppId,
    /// The AE-ID in its SP-relative and absolute forms.
    pub(crate) full_ae_ids: Vec<String>,
}

/// An AE registration refused: the error, and what to log (the reason, the AE-ID and the `api` as
/// given), unless admission logged it already or it is not a decision (a storage failure).
/// `Cse::refused_ae` is the one place that records these.
pub(crate) struct AeRefusal {
    pub(crate) error: Error,
    pub(crate) log: Option<(crate::admission::policy::Reason, String, String)>,
}

impl AeRefusal {
    /// A refusal for `reason` of the AE `ae` (its AE-ID, or the originator as given before one is
    /// assigned) with the `api` as given.
    pub(crate) fn new(reason: crate::admission::policy::Reason, ae: &str, api: &str, error: Error) -> Self {
        Self { error, log: Some((reason, ae.to_owned(), api.to_owned())) }
    }

    /// A refusal that is recorded already, or that is not a decision.
    pub(crate) fn unlogged(error: Error) -> Self {
        Self { error, log: None }
    }
}

/// The `api` of an AE CREATE's content as given ("" when there is none), for the decision log.
pub(crate) fn claimed_api(pc: Option<&Value>) -> &str {
    pc.and_then(|pc| pc.get(ResourceType::Ae.member_name()))
        .and_then(|ae| ae.get("api"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The resource ID of the CSEBase's default access control policy.
pub(crate) const DEFAULT_ACP_RI: &str = "acpCSEBase";

/// The resource types Warden hosts, as the CSEBase's `srt` lists them.
const SUPPORTED_TYPES: &[ResourceType] = &[
    ResourceType::AccessControlPolicy,
    ResourceType::Ae,
    ResourceType::Container,
    ResourceType::ContentInstance,
    ResourceType::CseBase,
    ResourceType::Group,
    ResourceType::RemoteCse,
    ResourceType::Subscription,
];

pub(crate) fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(char::is_whitespace)
}

fn check_release_list(name: &str, v: Option<&Value>) -> Result<(), Error> {
    for s in v.and_then(Value::as_array).into_iter().flatten() {
        let ok = s.as_str().and_then(ReleaseVersion::parse).is_some();
        if !ok {
            return Err(Error::bad_request(format!("{name}: {s} is not a release version")));
        }
    }
    Ok(())
}

fn check_serializations(v: Option<&Value>) -> Result<(), Error> {
    for s in v.and_then(Value::as_array).into_iter().flatten() {
        if s.as_str().and_then(Serialization::from_media_type).is_none() {
            return Err(Error::bad_request(format!("csz: {s} is not a supported serialization")));
        }
    }
    Ok(())
}

fn check_poa(v: Option<&Value>) -> Result<(), Error> {
    for s in v.and_then(Value::as_array).into_iter().flatten() {
        let s = s.as_str().unwrap_or_default();
        let scheme_ok = s.split_once("://").is_some_and(|(sc, rest)| {
            matches!(sc, "http" | "https" | "mqtt" | "mqtts" | "coap" | "coaps" | "ws" | "wss") && !rest.is_empty()
        });
        if !scheme_ok {
            return Err(Error::bad_request(format!("poa: {s:?} is not a point of access URL")));
        }
    }
    Ok(())
}

fn check_nct(v: Option<&Value>) -> Result<(), Error> {
    match v.map(|v| v.as_i64().and_then(NotificationContentType::from_num)) {
        None => Ok(()),
        Some(Some(
            NotificationContentType::AllAttributes
            | NotificationContentType::ModifiedAttributes
            | NotificationContentType::ResourceId,
        )) => Ok(()),
        Some(_) => {
            Err(Error::bad_request("nct must be 1 (all attributes), 2 (modified attributes) or 3 (resource ID)"))
        }
    }
}

impl Cse {
    /// Creates the CSEBase and its default access control policy when the store is empty, and
    /// refreshes the CSEBase's points of access otherwise.
    pub(crate) async fn bootstrap(&self) -> Result<(), Error> {
        let now = self.clock.now();
        *self.started.write() = now;
        if let Some(mut cb) = self.store.get(self.cfg.cse_ri()).await.map_err(store_error)? {
            let poa = json!(self.cfg.poa);
            if cb.get("poa") != Some(&poa) {
                cb.attrs.insert("poa".into(), poa);
                self.store.apply(Tx::one(Write::Update(cb))).await.map_err(store_error)?;
            }
            return Ok(());
        }
        let ts = Value::String(now.to_string());
        let cse_id = self.cfg.cse_id.to_string();
        let mut cb = Map::new();
        cb.insert("ri".into(), json!(self.cfg.cse_ri()));
        cb.insert("rn".into(), json!(self.cfg.cse_name.as_str()));
        cb.insert("pi".into(), json!(""));
        cb.insert("ty".into(), json!(ResourceType::CseBase.num()));
        cb.insert("ct".into(), ts.clone());
        cb.insert("lt".into(), ts.clone());
        cb.insert("csi".into(), json!(cse_id));
        cb.insert("spi".into(), json!(self.cfg.sp_id.as_str()));
        cb.insert("cst".into(), json!(self.cfg.cse_type.num()));
        if self.cfg.cse_type == CseType::In {
            cb.insert("ici".into(), json!(cse_id));
        }
        cb.insert("srt".into(), json!(SUPPORTED_TYPES.iter().map(|t| t.num()).collect::<Vec<_>>()));
        cb.insert("srv".into(), json!(ReleaseVersion::SUPPORTED.iter().map(|v| v.as_str()).collect::<Vec<_>>()));
        cb.insert("csz".into(), json!(["application/json", "application/cbor"]));
        cb.insert("poa".into(), json!(self.cfg.poa));
        cb.insert("acpi".into(), json!([DEFAULT_ACP_RI]));
        let cb = Resource::new(ResourceType::CseBase, self.cfg.cse_name.to_string(), cse_id.clone(), cb);

        // Anyone may retrieve and discover the CSEBase; only the admin may change the policy.
        let acp = json!({
            "ri": DEFAULT_ACP_RI, "rn": "acpCSEBaseAccess", "pi": self.cfg.cse_ri(),
            "ty": ResourceType::AccessControlPolicy.num(), "ct": ts, "lt": ts,
            "et": Timestamp::MAX.to_string(),
            "pv": {"acr": [{"acor": ["all"], "acop": Operation::Retrieve.acop_bit() | onem2m::ACOP_DISCOVERY}]},
            "pvs": {"acr": [{"acor": [self.cfg.admin], "acop": onem2m::ACOP_ALL}]},
        });
        let acp = Resource::new(
            ResourceType::AccessControlPolicy,
            format!("{}/acpCSEBaseAccess", self.cfg.cse_name),
            cse_id,
            acp.as_object().cloned().unwrap_or_default(),
        );
        self.store.apply(Tx { writes: vec![Write::Create(cb), Write::Create(acp)] }).await.map_err(store_error)?;
        Ok(())
    }

    /// The AE of a registration (TS-0001 §10.2.2.2, TS-0004 §7.4.5.2.1; ONEM2M.md §2): its stem, the
    /// registration rules, and admission's decision. The caller records a refusal.
    pub(crate) async fn prepare_ae(
        &self,
        parent: &Resource,
        attrs: Map<String, Value>,
        rv: ReleaseVersion,
        orig: &Orig,
        ctx: &Ctx,
        now: Timestamp,
    ) -> Result<NewAe, AeRefusal> {
        use crate::admission::policy::Reason;
        let api = attrs.get("api").and_then(Value::as_str).unwrap_or_default().to_owned();
        let refuse = |reason: Reason, ae: &str, error: Error| AeRefusal::new(reason, ae, &api, error);
        // An AE-ID in the client certificate names the stem; the originator must agree with it
        // (TS-0001 §10.2.2.2 step 003 a). A disagreement is answered once `api` is known, so that
        // admission records it like any other refusal (DESIGN.md §7 steps 3 and 4).
        let cert_ae = ctx.sa.as_ref().and_then(|sa| sa.ae_id.as_deref());
        let cert_stem = cert_ae.and_then(|uri| onem2m::AeId::parse(uri).ok()).and_then(|ae| self.local_ae_stem(&ae));
        let mut claim = match (cert_ae, &cert_stem) {
            (Some(uri), None) => Some(format!("the certificate's AE-ID {uri} is not an AE-ID of this CSE")),
            _ => None,
        };
        // With it, whether this CSE made the stem up now: such a stem is new (no AE has it, and the
        // store's unique resource ID would refuse it all the same), so it is not looked for.
        let (stem, generated) = match &orig.kind {
            Originator::Empty | Originator::NewC | Originator::NewS if cert_ae.is_some() => match &cert_stem {
                Some(s) => {
                    let wanted = match orig.kind {
                        Originator::NewC => Some('C'),
                        Originator::NewS => Some('S'),
                        _ => None,
                    };
                    if wanted.is_some_and(|k| !s.starts_with(k)) {
                        claim = Some(format!("the certificate's AE-ID {s} is of the other kind"));
                    }
                    (s.clone(), false)
                }
                // Refused below; the certificate's claim names the AE in the decision log.
                None => (cert_ae.unwrap_or_default().to_owned(), false),
            },
            Originator::Empty | Originator::NewC => (ids::new_stem('C', now), true),
            Originator::NewS => (ids::new_stem('S', now), true),
            Originator::Ae(ae) => {
                let s = self.local_ae_stem(ae).ok_or_else(|| {
                    let e = Error::new(Rsc::SecurityAssociationRequired, "the originator is an AE-ID of another CSE");
                    refuse(Reason::ForeignAeId, &orig.id, e)
                })?;
                if let Some(c) = cert_stem.as_ref().filter(|c| *c != &s) {
                    claim = Some(format!("the originator is not {c}, the AE-ID in the client certificate"));
                }
                (s, false)
            }
            Originator::Cse { .. } => {
                let e = Error::new(
                    Rsc::SecurityAssociationRequired,
                    "a CSE-ID cannot register as an AE (a security association is required)",
                );
                return Err(refuse(Reason::CseOriginator, &orig.id, e));
            }
        };
        let app_id = AppId::parse_for_release(&api, rv)
            .map_err(|e| refuse(Reason::BadApi, &stem, Error::bad_request(format!("api: {e}"))))?;
        let full_ae_ids = self.full_ae_ids(&stem);
        let reg = Registration {
            stem: &stem,
            full_ae_ids: &full_ae_ids,
            app_id: &app_id,
            sa: ctx.sa.as_ref(),
            binding: ctx.binding.name(),
            now,
        };
        if let Some(message) = claim {
            return Err(refuse(Reason::ClaimMismatch, &stem, Error::new(Rsc::OriginatorNotAuthenticated, message)));
        }
        let bad = |e: Error| refuse(Reason::BadRequest, &stem, e);
        check_release_list("srv", attrs.get("srv")).map_err(bad)?;
        check_serializations(attrs.get("csz")).map_err(bad)?;
        check_poa(attrs.get("poa")).map_err(bad)?;
        let existing = if generated {
            None
        } else {
            self.store.get(&stem).await.map_err(|e| AeRefusal::unlogged(store_error(e)))?
        };
        if existing.is_some() {
            // Whoever asks, and with whichever credential: the AE-ID is taken.
            let e = Error::new(Rsc::OriginatorHasAlreadyRegistered, format!("the AE {stem} is registered already"));
            return Err(refuse(Reason::AlreadyRegistered, &stem, e));
        }
        // Everything the request alone decides is checked before the registry is asked.
        let mut res = self.fill_common(ResourceType::Ae, parent, attrs, stem.clone(), &stem, now).await.map_err(bad)?;
        let mut grant = match &self.admission {
            Some(a) => Some(a.decide(&reg).await.map_err(AeRefusal::unlogged)?),
            None => None,
        };
        res.attrs.insert("aei".into(), Value::String(stem.clone()));
        // The privacy policy of an admitted AE is created with it and governs its resources.
        let mut acp = None;
        if let Some(g) = &mut grant {
            g.set_srn(&res.srn);
        }
        if let Some(g) = &grant
            && let Some(rules) = g.privacy_acp(&stem, &self.cfg.admin)
        {
            let ts = Value::String(now.to_string());
            let ri = ids::new_ri(ResourceType::AccessControlPolicy, now);
            let mut attrs = match rules {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            for (k, v) in [
                ("ri", json!(ri)),
                ("rn", json!("acpPrivacy")),
                ("pi", json!(stem)),
                ("ty", json!(ResourceType::AccessControlPolicy.num())),
                ("ct", ts.clone()),
                ("lt", ts),
                ("et", res.attrs.get("et").cloned().unwrap_or(Value::Null)),
            ] {
                attrs.insert(k.into(), v);
            }
            let mut acpi: Vec<Value> = res.get("acpi").and_then(Value::as_array).cloned().unwrap_or_default();
            acpi.push(json!(ri));
            res.attrs.insert("acpi".into(), Value::Array(acpi));
            acp = Some(Resource::new(
                ResourceType::AccessControlPolicy,
                format!("{}/acpPrivacy", res.srn),
                stem.clone(),
                attrs,
            ));
        }
        if let Some(g) = &grant {
            res.meta = Some(g.meta(acp.as_ref().map(Resource::ri)));
        }
        Ok(NewAe { res, acp, grant, app_id, full_ae_ids })
    }

    /// The resource ID of a remoteCSE: the registering CSE's ID without its slash.
    pub(crate) fn remote_cse_ri(&self, orig: &Orig) -> Result<String, Error> {
        match &orig.kind {
            Originator::Cse { cse, .. } if cse != &self.cfg.cse_id => Ok(cse.name().to_owned()),
            _ => Err(Error::new(Rsc::OperationNotAllowed, "only another CSE can register a remoteCSE")),
        }
    }

    /// The rules of the types other than AE, applied to a resource made by `fill_common`.
    pub(crate) async fn prepare_type(
        &self,
        parent: &Resource,
        res: &mut Resource,
        orig: &Orig,
        _ctx: &Ctx,
    ) -> Result<(), Error> {
        match res.ty {
            ResourceType::Container => {
                for k in ["cni", "cbs", "st"] {
                    res.attrs.insert(k.into(), json!(0));
                }
                self.apply_container_limits(res).await?;
            }
            ResourceType::ContentInstance => {
                let cs = content_size(res.get("con"));
                if let Some(cnf) = res.get_str("cnf") {
                    check_cnf(cnf)?;
                }
                if let Some(mbs) = parent.get_u64("mbs")
                    && cs > mbs
                {
                    return Err(Error::new(
                        Rsc::NotAcceptable,
                        format!("the content ({cs} bytes) is larger than the container's mbs ({mbs})"),
                    ));
                }
                if let Some(a) = &self.admission {
                    a.check_content(parent.pi(), parent.rn(), res.get_str("cnf"), res.get("con")).await?;
                }
                res.attrs.insert("cs".into(), json!(cs));
                res.attrs.insert("st".into(), json!(0));
            }
            ResourceType::Subscription => {
                self.check_subscription(&res.attrs).await?;
                // The subscriber must be allowed to see what it subscribes to.
                if self.check_access(parent, orig, Operation::Retrieve.acop_bit()).await.is_err() {
                    return Err(Error::new(
                        Rsc::SubscriptionCreatorHasNoPrivilege,
                        "the subscriber may not retrieve the subscribed-to resource",
                    ));
                }
                if !res.attrs.contains_key("nct") {
                    res.attrs.insert("nct".into(), json!(NotificationContentType::AllAttributes.num()));
                }
                if !res.attrs.contains_key("enc") {
                    res.attrs.insert("enc".into(), json!({"net": [NotificationEventType::UpdateOfResource.num()]}));
                }
                if !res.attrs.contains_key("cr") {
                    res.attrs.insert("cr".into(), Value::String(orig.id.clone()));
                }
            }
            ResourceType::AccessControlPolicy => {
                validate_privileges("pv", res.get("pv").unwrap_or(&Value::Null))?;
                validate_privileges("pvs", res.get("pvs").unwrap_or(&Value::Null))?;
            }
            ResourceType::Group => {
                check_group_features(&res.attrs)?;
                self.check_group(&mut res.attrs).await?
            }
            ResourceType::RemoteCse => {
                check_release_list("srv", res.get("srv"))?;
                check_serializations(res.get("csz"))?;
                check_poa(res.get("poa"))?;
                res.attrs.insert("csi".into(), Value::String(format!("/{}", res.ri())));
            }
            _ => {}
        }
        Ok(())
    }

    /// The AE a resource belongs to: the one at the top of its structured name, if any.
    pub(crate) async fn owner_ae(&self, srn: &str) -> Result<Option<String>, Error> {
        let mut parts = srn.splitn(3, '/');
        let (Some(cb), Some(top)) = (parts.next(), parts.next()) else { return Ok(None) };
        match self.store.get_by_srn(&format!("{cb}/{top}")).await.map_err(store_error)? {
            Some(r) if r.ty == ResourceType::Ae => Ok(Some(r.ri().to_owned())),
            _ => Ok(None),
        }
    }

    /// The quotas and privacy policy of an admitted AE, on one of its containers: `mni`, `mbs` and
    /// `mia` at most the AE's, and the privacy policy when no `acpi` is given (it grants the allowed
    /// recipients their reads). Whatever `acpi` the AE sets, the privacy terms still bound who may
    /// read: `Admission::privacy_allows`, checked with every access.
    async fn apply_container_limits(&self, res: &mut Resource) -> Result<(), Error> {
        let Some(a) = &self.admission else { return Ok(()) };
        let Some(owner) = self.owner_ae(&res.srn).await? else { return Ok(()) };
        let Some(limits) = a.container_limits(&owner) else { return Ok(()) };
        for (name, cap) in [("mni", limits.mni), ("mbs", limits.mbs), ("mia", limits.mia)] {
            if let Some(cap) = cap {
                let v = res.get_u64(name).map_or(cap, |v| v.min(cap));
                res.attrs.insert(name.into(), json!(v));
            }
        }
        if let Some(acp) = limits.acp
            && res.str_list("acpi").is_empty()
        {
            res.attrs.insert("acpi".into(), json!([acp]));
        }
        Ok(())
    }

    /// Rules an UPDATE must keep, per type, checked on the merged attributes.
    pub(crate) async fn check_update(&self, res: &mut Resource, changed: &Map<String, Value>) -> Result<(), Error> {
        match res.ty {
            ResourceType::Ae => {
                check_release_list("srv", changed.get("srv"))?;
                check_serializations(changed.get("csz"))?;
                check_poa(changed.get("poa"))?;
            }
            ResourceType::Subscription => self.check_subscription(&res.attrs).await?,
            ResourceType::Container if ["mni", "mbs", "mia"].iter().any(|k| changed.contains_key(*k)) => {
                self.apply_container_limits(res).await?
            }
            ResourceType::AccessControlPolicy => {
                validate_privileges("pv", res.get("pv").unwrap_or(&Value::Null))?;
                validate_privileges("pvs", res.get("pvs").unwrap_or(&Value::Null))?;
            }
            ResourceType::Group => {
                check_group_features(changed)?;
                if changed.contains_key("mid") || changed.contains_key("mnm") {
                    self.check_group(&mut res.attrs).await?
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn check_subscription(&self, attrs: &Map<String, Value>) -> Result<(), Error> {
        super::subscription::Criteria::parse(attrs.get("enc"))?;
        super::subscription::check_supported(attrs)?;
        super::subscription::check_subscriber(attrs.get("su"))?;
        check_nct(attrs.get("nct"))?;
        if attrs.get("exc").and_then(Value::as_u64) == Some(0) {
            return Err(Error::bad_request("exc must be at least 1"));
        }
        let nu: Vec<&str> =
            attrs.get("nu").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        if nu.is_empty() {
            return Err(Error::bad_request("nu must list at least one notification target"));
        }
        for n in nu {
            self.notify_target(n).await?;
        }
        Ok(())
    }

    /// Where a `nu` entry sends to: a URL as it is, or an AE (by AE-ID or resource ID) through its
    /// points of access.
    pub(crate) async fn notify_target(&self, nu: &str) -> Result<NotifyTarget, Error> {
        if is_url(nu) {
            return Ok(NotifyTarget { key: nu.to_owned(), urls: vec![nu.to_owned()] });
        }
        if nu.contains("://") {
            return Err(Error::bad_request(format!("nu: {nu} uses an unsupported scheme (http and https are)")));
        }
        let ri = self.normalise_id(nu);
        let ae = match self.store.get(&ri).await.map_err(store_error)? {
            Some(r) if r.ty == ResourceType::Ae => r,
            _ => match self.resolve(nu).await {
                Ok(Target::Resource(r)) if r.ty == ResourceType::Ae => std::sync::Arc::unwrap_or_clone(r),
                _ => return Err(Error::bad_request(format!("nu: {nu} is neither a URL nor a registered AE"))),
            },
        };
        let urls: Vec<String> = ae.str_list("poa").into_iter().filter(|u| is_url(u)).map(str::to_owned).collect();
        Ok(NotifyTarget { key: ae.ri().to_owned(), urls })
    }

    /// Sends the verification request of a new subscription to every target that is not the
    /// subscriber itself; 5204 unless each answers 2000 (TS-0004 §7.5.1.2.3).
    pub(crate) async fn verify_subscription(&self, sub: &Resource, orig: &Orig) -> Result<(), Error> {
        let pc = json!({"m2m:sgn": {"vrq": true, "sur": self.sp_relative(sub.ri()), "cr": orig.id}});
        for nu in sub.str_list("nu") {
            let target = self.notify_target(nu).await?;
            if target.key == orig.id {
                continue;
            }
            let failed = |why: String| Error::new(Rsc::SubscriptionVerificationInitiationFailed, why);
            if target.urls.is_empty() {
                return Err(failed(format!("the notification target {nu} has no point of access")));
            }
            match self.notifier.send_now(&target, pc.clone(), self.cfg.verification_timeout).await {
                Ok(Rsc::Ok) => {}
                Ok(rsc) => return Err(failed(format!("the notification target {nu} refused verification with {rsc}"))),
                Err(e) => return Err(failed(format!("the notification target {nu} could not be verified: {}", e.dbg))),
            }
        }
        Ok(())
    }

    /// Group membership rules: members exist, their number is within `mnm`, their type is `mt`
    /// (with `csy` deciding what happens to the others); `cnm` and `mtv` follow.
    async fn check_group(&self, attrs: &mut Map<String, Value>) -> Result<(), Error> {
        let mid: Vec<String> = attrs
            .get("mid")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let mnm = attrs.get("mnm").and_then(Value::as_u64).unwrap_or(u64::MAX);
        if mid.len() as u64 > mnm {
            return Err(Error::new(Rsc::MaxNumberOfMemberExceeded, format!("{} members exceed mnm {mnm}", mid.len())));
        }
        let mut unique = std::collections::HashSet::new();
        if !mid.iter().all(|m| unique.insert(m)) {
            return Err(Error::bad_request("mid lists a member twice"));
        }
        let mt = attrs.get("mt").and_then(Value::as_u64).unwrap_or(0);
        let csy = attrs.get("csy").and_then(Value::as_u64).unwrap_or(1);
        let mut kept = Vec::with_capacity(mid.len());
        for m in &mid {
            let member = match self.resolve(m).await {
                Ok(Target::Resource(r)) => std::sync::Arc::unwrap_or_clone(r),
                _ => return Err(Error::not_found(format!("group member {m} does not exist"))),
            };
            let ty = u64::from(member.ty.num());
            if mt != 0 && ty != mt {
                match csy {
                    // ABANDON_MEMBER: drop it; ABANDON_GROUP: refuse; SET_MIXED: the group becomes mixed.
                    1 => continue,
                    3 => {
                        attrs.insert("mt".into(), json!(0));
                    }
                    _ => {
                        return Err(Error::new(
                            Rsc::GroupMemberTypeInconsistent,
                            format!("member {m} is not of the group's member type {mt}"),
                        ));
                    }
                }
            }
            kept.push(Value::String(m.clone()));
        }
        attrs.insert("cnm".into(), json!(kept.len()));
        attrs.insert("mid".into(), Value::Array(kept));
        attrs.insert("mtv".into(), json!(true));
        if !attrs.contains_key("mt") {
            attrs.insert("mt".into(), json!(0));
        }
        if !attrs.contains_key("csy") {
            attrs.insert("csy".into(), json!(1));
        }
        Ok(())
    }
}

/// The group features this CSE does not provide are refused rather than ignored: semantic queries
/// through a group (`ssi` true; false, no semantic support, is what every group has here) and the
/// aggregation of notifications (`nar`).
fn check_group_features(attrs: &Map<String, Value>) -> Result<(), Error> {
    if attrs.get("ssi").and_then(Value::as_bool) == Some(true) {
        return Err(Error::bad_request(
            "ssi: semantic support (semanticSupportIndicator true) is not implemented by this CSE",
        ));
    }
    if attrs.get("nar").is_some_and(|v| !v.is_null()) {
        return Err(Error::bad_request("nar: notifyAggregation is not implemented by this CSE"));
    }
    Ok(())
}

/// `cs`: the length in bytes of the content as sent (a string's UTF-8 bytes; otherwise its JSON).
pub(crate) fn content_size(con: Option<&Value>) -> u64 {
    match con {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s.len() as u64,
        Some(v) => serde_json::to_vec(v).map(|b| b.len() as u64).unwrap_or(0),
    }
}

/// `cnf`: `type/subtype[:encoding[:transfer encoding]]`, encodings 0-2.
pub(crate) fn check_cnf(cnf: &str) -> Result<(), Error> {
    let mut parts = cnf.split(':');
    let media = parts.next().unwrap_or_default();
    let media_ok = media.split_once('/').is_some_and(|(t, s)| !t.is_empty() && !s.is_empty());
    let enc_ok = parts.all(|p| matches!(p, "0" | "1" | "2"));
    if media_ok && enc_ok && cnf.split(':').count() <= 3 {
        Ok(())
    } else {
        Err(Error::bad_request(format!("cnf {cnf:?} is not mediaType[:encoding[:transferEncoding]]")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_sizes() {
        assert_eq!(content_size(Some(&json!("v1"))), 2);
        assert_eq!(content_size(Some(&json!("ü"))), 2);
        assert_eq!(content_size(Some(&json!({"a": 1}))), 7);
        assert_eq!(content_size(None), 0);
    }

    #[test]
    fn content_info() {
        for ok in ["text/plain:0", "application/json:0", "application/json", "image/png:1:2"] {
            check_cnf(ok).unwrap();
        }
        for bad in ["text", "text/plain:9", "/x", "a/b:0:0:0"] {
            assert!(check_cnf(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_and_lists() {
        assert!(is_url("http://127.0.0.1:9990/x"));
        assert!(!is_url("mqtt://broker"));
        assert!(!is_url("http://"));
        check_release_list("srv", Some(&json!(["2a", "3", "4", "5"]))).unwrap();
        assert!(check_release_list("srv", Some(&json!(["9"]))).is_err());
        check_serializations(Some(&json!(["application/json", "application/cbor"]))).unwrap();
        assert!(check_serializations(Some(&json!(["application/xml"]))).is_err());
        check_poa(Some(&json!(["http://h:1", "mqtt://b"]))).unwrap();
        assert!(check_poa(Some(&json!(["nowhere"]))).is_err());
        assert!(check_nct(Some(&json!(4))).is_err());
    }
}
