//! CREATE: the steps every resource type shares, then the type's own rules (in `types`).

use onem2m::attrs::{type_policies, validate};
use onem2m::{
    DesiredIdResultType, Error, NotificationEventType, Operation, ReleaseVersion, Request, ResourceName, ResourceType,
    Response, ResultContent, Rsc, Timestamp,
};
use serde_json::{Map, Value, json};

use super::events::event;
use super::render::{address, result_content};
use super::types::{AeRefusal, claimed_api};
use super::{Cse, Ctx, Deadline, Orig, Target, ids, store_error};
use crate::resource::Resource;
use crate::store::{StoreError, Tx, Write};

/// The child types each parent type may hold (TS-0001 §9.6; the types Warden hosts).
pub(crate) fn allowed_child(parent: ResourceType, child: ResourceType) -> bool {
    use ResourceType::*;
    match parent {
        CseBase => matches!(child, Ae | Container | AccessControlPolicy | Group | Subscription | RemoteCse),
        Ae => matches!(child, Container | AccessControlPolicy | Group | Subscription),
        Container => matches!(child, Container | ContentInstance | Subscription),
        RemoteCse => matches!(child, Container | AccessControlPolicy | Group | Subscription),
        AccessControlPolicy | Group => child == Subscription,
        _ => false,
    }
}

/// The attributes of a request body: `{"m2m:<type>": {...}}` whose member matches `ty`.
pub(crate) fn body_attrs(req: &Request, ty: ResourceType) -> Result<&Map<String, Value>, Error> {
    let pc = req.pc.as_ref().ok_or_else(|| Error::bad_request("the request has no content"))?;
    let obj = pc.as_object().ok_or_else(|| Error::bad_request("the content must be a JSON object"))?;
    let mut members = obj.iter();
    match (members.next(), members.next()) {
        (Some((name, attrs)), None) => {
            if name != ty.member_name() {
                return Err(Error::bad_request(format!(
                    "the content is {name} but the resource type is {} ({})",
                    ty.num(),
                    ty.member_name()
                )));
            }
            match attrs {
                Value::Object(m) => Ok(m),
                _ => Err(Error::bad_request(format!("{name} must be an object"))),
            }
        }
        _ => Err(Error::bad_request(format!("the content must have exactly one member, {}", ty.member_name()))),
    }
}

/// The result content a request asks for, checked against what the operation allows.
pub(crate) fn rcn(req: &Request, default: ResultContent, allowed: &[ResultContent]) -> Result<ResultContent, Error> {
    let rcn = req.rcn.unwrap_or(default);
    if allowed.contains(&rcn) {
        Ok(rcn)
    } else {
        Err(Error::bad_request(format!("result content (rcn) {} is not allowed for this operation", rcn.num())))
    }
}

/// The answer to a CREATE that stored `res`: 2001, its address and the result content asked for.
fn created_response(req: &Request, res: &Resource, rcn: ResultContent, requested: &Map<String, Value>) -> Response {
    let mut resp = Response::new(Rsc::Created, &req.rqi);
    resp.location = Some(address(res, req.drt.unwrap_or(DesiredIdResultType::Structured)));
    resp.pc = result_content(res, rcn, req.drt, Some(requested));
    resp
}

/// True for the resource types a client may create here (every type Warden hosts but the CSEBase).
fn hosted(ty: ResourceType) -> bool {
    type_policies(ty).is_some() && ty != ResourceType::CseBase
}

/// The result content of a CREATE, and the checks of the request itself: no filter criteria.
fn create_rcn(req: &Request) -> Result<ResultContent, Error> {
    use ResultContent::*;
    if req.fc.is_some() {
        return Err(Error::bad_request("filter criteria are not allowed in a CREATE"));
    }
    rcn(
        req,
        Attributes,
        &[Nothing, Attributes, HierarchicalAddress, HierarchicalAddressAndAttributes, ModifiedAttributes],
    )
}

/// 4108 unless a `ty` may be created under `parent`.
fn check_child(parent: &Resource, ty: ResourceType) -> Result<(), Error> {
    if allowed_child(parent.ty, ty) {
        Ok(())
    } else {
        Err(Error::new(
            Rsc::InvalidChildResourceType,
            format!("a {} cannot be created under a {}", ty.short_name(), parent.ty.short_name()),
        ))
    }
}

/// Virtual resource names that a child may not take under a parent of this type.
fn reserved_name(parent: ResourceType, rn: &str) -> bool {
    match parent {
        ResourceType::Container => matches!(rn, "la" | "ol"),
        ResourceType::Group => rn == "fopt",
        ResourceType::Subscription => rn == "ntsr",
        _ => false,
    }
}

impl Cse {
    pub(crate) async fn create(
        &self,
        req: &Request,
        rv: ReleaseVersion,
        orig: &Orig,
        ctx: &Ctx,
        now: Timestamp,
        dl: Deadline,
    ) -> Result<Response, Error> {
        let ty = req.ty.ok_or_else(|| Error::bad_request("the resource type (ty) of a CREATE is missing"))?;
        // A type this CSE does not host is answered as such, whatever the content looks like.
        if !hosted(ty) {
            return Err(Error::new(
                Rsc::NotImplemented,
                format!("creating resources of type {} ({}) is not supported", ty.num(), ty.name()),
            ));
        }
        if ty == ResourceType::Ae {
            // Boxed: the registration's state (admission, the registry lookup) would otherwise be
            // part of every CREATE's future, and copied with it.
            return match Box::pin(self.create_ae(req, rv, orig, ctx, now, dl)).await {
                Ok(resp) => Ok(resp),
                Err(refusal) => Err(Box::pin(self.refused_ae(refusal, now)).await),
            };
        }
        let rcn = create_rcn(req)?;
        let parent = match self.resolve_parent(&req.to).await? {
            Target::Resource(r) => r,
            Target::FanOut { group, rest } => return self.fan_out(req, group, &rest, orig, ctx, dl).await,
            _ => return Err(Error::new(Rsc::OperationNotAllowed, "a virtual resource has no children")),
        };
        let requested = body_attrs(req, ty)?;
        validate(ty, Operation::Create, requested)?;
        check_child(&parent, ty)?;
        let (res, instance) = {
            // Like an AE, a remote CSE registers by the registration rules, not the parent's ACP.
            if ty != ResourceType::RemoteCse {
                self.check_access(&parent, orig, Operation::Create.acop_bit()).await?;
            }
            let ri = match ty {
                ResourceType::RemoteCse => self.remote_cse_ri(orig)?,
                _ => ids::new_ri(ty, now),
            };
            let mut res = self.fill_common(ty, &parent, requested.clone(), ri, &orig.id, now).await?;
            self.prepare_type(&parent, &mut res, orig, ctx).await?;
            (res, ty == ResourceType::ContentInstance)
        };

        if ty == ResourceType::Subscription {
            self.within(dl, Box::pin(self.verify_subscription(&res, orig))).await?;
        }
        let created =
            event(Some(NotificationEventType::CreateOfDirectChild), Some(Operation::Create), &orig.id, &res, None);
        let pending = self.pending(&parent, created).await;
        self.before(dl)?;
        // The answer is made before the resource goes to the store, which takes it; only a
        // notification needs it after that.
        let resp = created_response(req, &res, rcn, requested);
        let rep = (!pending.is_empty()).then(|| res.clone());
        let write = if instance { Write::CreateInstance(res) } else { Write::Create(res) };
        let mut tx = Tx::one(write);
        tx.writes.extend(pending.writes());
        let out = self.store.apply(tx).await.map_err(store_error)?;
        if ty == ResourceType::Subscription {
            self.cache.forget_subs(parent.ri());
        }
        if let Some(rep) = &rep {
            self.deliver(pending, rep, None, &out).await;
        }
        Ok(resp)
    }

    /// Records a refused AE registration in the decision log (with admission on) and gives the
    /// error to answer. Every refusal of an AE CREATE comes through here, and the log's budget and
    /// coalescing (in admission) bound what it writes. A storage failure is not a decision.
    pub(crate) async fn refused_ae(&self, refusal: AeRefusal, now: Timestamp) -> Error {
        let AeRefusal { error, log } = refusal;
        if let (Some(a), Some((reason, ae, api))) = (&self.admission, log)
            && error.rsc != Rsc::InternalServerError
        {
            a.refused_registration(&ae, &api, reason, &error, now).await;
        }
        error
    }

    /// An AE CREATE: the request's own checks, the parent, the content, then the registration rules
    /// and admission (`prepare_ae`), then the store. The parent's ACP is not checked; the
    /// registration rules are.
    async fn create_ae(
        &self,
        req: &Request,
        rv: ReleaseVersion,
        orig: &Orig,
        ctx: &Ctx,
        now: Timestamp,
        dl: Deadline,
    ) -> Result<Response, AeRefusal> {
        use crate::admission::policy::Reason;
        let api = claimed_api(req.pc.as_ref());
        let refuse = |reason: Reason| move |e: Error| AeRefusal::new(reason, &orig.id, api, e);
        let rcn = create_rcn(req).map_err(refuse(Reason::BadRequest))?;
        let parent = match self.resolve_parent(&req.to).await.map_err(refuse(Reason::InvalidParent))? {
            Target::Resource(r) => r,
            // A request to the group: each member's AE CREATE is decided, and recorded, on its own.
            Target::FanOut { group, rest } => {
                return self.fan_out(req, group, &rest, orig, ctx, dl).await.map_err(AeRefusal::unlogged);
            }
            _ => {
                let e = Error::new(Rsc::OperationNotAllowed, "a virtual resource has no children");
                return Err(refuse(Reason::InvalidParent)(e));
            }
        };
        let requested = body_attrs(req, ResourceType::Ae).map_err(refuse(Reason::BadRequest))?;
        validate(ResourceType::Ae, Operation::Create, requested).map_err(refuse(Reason::BadRequest))?;
        check_child(&parent, ResourceType::Ae).map_err(refuse(Reason::InvalidParent))?;
        // An expired request costs no registry lookup.
        self.before(dl).map_err(refuse(Reason::RequestExpired))?;
        let new = self.prepare_ae(&parent, requested.clone(), rv, orig, ctx, now).await?;
        self.register_ae(req, rcn, &parent, new, requested, orig, ctx, now, dl).await
    }

    /// Stores a new AE (with its privacy policy, in one transaction) and starts what admission
    /// granted it.
    #[allow(clippy::too_many_arguments)]
    async fn register_ae(
        &self,
        req: &Request,
        rcn: ResultContent,
        parent: &Resource,
        new: super::types::NewAe,
        requested: &Map<String, Value>,
        orig: &Orig,
        ctx: &Ctx,
        now: Timestamp,
        dl: Deadline,
    ) -> Result<Response, AeRefusal> {
        use crate::admission::policy::Reason;
        let super::types::NewAe { res, acp, grant, app_id, full_ae_ids } = new;
        let stem = res.ri().to_owned();
        let refuse = |reason: Reason, e: Error| AeRefusal::new(reason, &stem, app_id.as_str(), e);
        let created =
            event(Some(NotificationEventType::CreateOfDirectChild), Some(Operation::Create), &orig.id, &res, None);
        let pending = self.pending(parent, created).await;
        // The registry lookup may have been slow; nothing is written once the request expired.
        self.before(dl).map_err(|e| refuse(Reason::RequestExpired, e))?;
        // As in `create`: the answer first, then the store takes the resources.
        let resp = created_response(req, &res, rcn, requested);
        let rep = (!pending.is_empty()).then(|| res.clone());
        let acp_ri = acp.as_ref().map(|a| a.ri().to_owned());
        let mut tx = Tx::one(Write::Create(res));
        tx.writes.extend(acp.map(Write::Create));
        tx.writes.extend(pending.writes());
        // The admission is logged, and the answer it was made on kept, with the AE: both or neither.
        let reg = crate::admission::Registration {
            stem: &stem,
            full_ae_ids: &full_ae_ids,
            app_id: &app_id,
            sa: ctx.sa.as_ref(),
            binding: ctx.binding.name(),
            now,
        };
        let admitted = self.admission.as_ref().zip(grant.as_ref());
        if let Some((a, g)) = admitted {
            tx.writes.push(a.admission_entry(&reg, g));
            tx.writes.extend(g.answer_write());
        }
        // The AE-ID and the name were free when they were checked; a registration that raced this
        // one may have taken them since.
        let out = self.store.apply(tx).await.map_err(|e| match e {
            StoreError::DuplicateRi(_) => refuse(
                Reason::AlreadyRegistered,
                Error::new(Rsc::OriginatorHasAlreadyRegistered, format!("the AE {stem} is registered already")),
            ),
            e @ StoreError::DuplicateName(_) => refuse(Reason::NameTaken, store_error(e)),
            e => AeRefusal::unlogged(store_error(e)),
        })?;
        if let Some((a, g)) = admitted {
            a.admitted(&reg, g, acp_ri.as_deref(), &out).await;
        }
        if let Some(rep) = &rep {
            self.deliver(pending, rep, None, &out).await;
        }
        Ok(resp)
    }

    /// The attributes every resource gets on CREATE: identity, parent, times, name, creator.
    pub(crate) async fn fill_common(
        &self,
        ty: ResourceType,
        parent: &Resource,
        mut attrs: Map<String, Value>,
        ri: String,
        creator: &str,
        now: Timestamp,
    ) -> Result<Resource, Error> {
        let rn = match attrs.get("rn").and_then(Value::as_str) {
            Some(rn) => ResourceName::parse(rn).map_err(|e| Error::bad_request(e.to_string()))?.into_string(),
            None => ri.clone(),
        };
        if reserved_name(parent.ty, &rn) {
            return Err(Error::bad_request(format!("'{rn}' is a virtual resource name here and cannot be used")));
        }
        let et = self.expiration(attrs.get("et"), now)?;
        // Policies by any address become resource IDs (`macp`: a group's members' policies).
        for name in ["acpi", "macp"] {
            if attrs.get(name).is_some() {
                let ids = self.normalise_acp_ids(name, attrs.get(name)).await?;
                attrs.insert(name.into(), ids);
            }
        }
        if attrs.contains_key("cr") {
            attrs.insert("cr".into(), Value::String(creator.to_owned()));
        }
        let now_s = Value::String(now.to_string());
        attrs.insert("ri".into(), Value::String(ri));
        attrs.insert("rn".into(), Value::String(rn.clone()));
        attrs.insert("pi".into(), Value::String(parent.ri().to_owned()));
        attrs.insert("ty".into(), json!(ty.num()));
        attrs.insert("ct".into(), now_s.clone());
        attrs.insert("lt".into(), now_s);
        attrs.insert("et".into(), Value::String(et.to_string()));
        Ok(Resource::new(ty, format!("{}/{rn}", parent.srn), creator.to_owned(), attrs))
    }

    /// The `et` to store: the requested one (in the future, at most `max_expiration` away) or the
    /// default.
    pub(crate) fn expiration(&self, requested: Option<&Value>, now: Timestamp) -> Result<Timestamp, Error> {
        let max = now.saturating_add(self.cfg.max_expiration);
        match requested.and_then(Value::as_str) {
            Some(s) => {
                let et = Timestamp::parse(s).map_err(|e| Error::bad_request(format!("et: {e}")))?;
                if et <= now {
                    return Err(Error::bad_request("the expiration time (et) is in the past"));
                }
                Ok(et.min(max))
            }
            None => Ok(now.saturating_add(self.tunables.read().default_expiration).min(max)),
        }
    }

    /// The entries of `name` (`acpi`, `macp`) as resource IDs of existing access control policies
    /// (they may be given as IDs or addresses in any form); 4000 for one that does not exist.
    pub(crate) async fn normalise_acp_ids(&self, name: &str, v: Option<&Value>) -> Result<Value, Error> {
        let Some(list) = v.and_then(Value::as_array) else {
            return Ok(Value::Array(Vec::new()));
        };
        let mut out = Vec::with_capacity(list.len());
        for entry in list.iter().filter_map(Value::as_str) {
            let found = match self.resolve(entry).await {
                Ok(Target::Resource(r)) if r.ty == ResourceType::AccessControlPolicy => r,
                _ => return Err(Error::bad_request(format!("{name}: {entry} is not an accessControlPolicy"))),
            };
            out.push(Value::String(found.ri().to_owned()));
        }
        Ok(Value::Array(out))
    }

    /// A request to `<group>/fopt[/rest]`, sent to every member (TS-0001 §10.2.7.6). The originator
    /// needs the operation through the fan-out point (`check_fan_out`: the group's `macp`, or its
    /// own access control), and each member's request is checked like any other. The answer
    /// aggregates the members' responses.
    pub(crate) async fn fan_out(
        &self,
        req: &Request,
        group: Resource,
        rest: &str,
        orig: &Orig,
        ctx: &Ctx,
        dl: Deadline,
    ) -> Result<Response, Error> {
        // A member request that reaches a fan-out point again (a group among the members, or a
        // group that is its own member) would fan out without end.
        if ctx.binding == super::Binding::Internal {
            return Err(Error::bad_request("nested fan-out is not allowed"));
        }
        self.check_fan_out(&group, orig, req.op.acop_bit()).await?;
        let members: Vec<String> = group.str_list("mid").into_iter().map(str::to_owned).collect();
        if members.is_empty() {
            return Err(Error::new(Rsc::NoMembers, "the group has no members"));
        }
        let inner = Ctx { binding: super::Binding::Internal, ..ctx.clone() };
        let requests = members.iter().map(|m| {
            let mut r = req.clone();
            r.to = if rest.is_empty() { m.clone() } else { format!("{m}/{rest}") };
            // The members' requests end when this one does.
            if let Some(at) = dl.at() {
                r.rqet = Some(onem2m::AbsRelTime::Absolute(at));
            }
            let inner = &inner;
            async move {
                // Members are resolved and checked like any request of this originator.
                let resp = self.handle(r, inner).await;
                json!({
                    "rsc": resp.rsc.code(),
                    "rqi": resp.rqi,
                    "pc": resp.pc,
                    "to": m,
                    "fr": self.cfg.cse_id.as_str(),
                })
            }
        });
        let rsps = futures_util::future::join_all(requests).await;
        Ok(Response::new(Rsc::Ok, &req.rqi).with_pc(json!({"m2m:agr": {"m2m:rsp": rsps}})))
    }
}
