//! UPDATE: merge the given attributes (`null` removes an optional one), keep the type's rules,
//! notify the subscribers.

use onem2m::attrs::validate;
use onem2m::{Error, NotificationEventType, Operation, Request, ResourceType, Response, ResultContent, Rsc, Timestamp};
use serde_json::Value;

use super::create::{body_attrs, rcn};
use super::events::event;
use super::render::result_content;
use super::{Cse, Ctx, Deadline, Orig, Target, store_error};
use crate::store::{Tx, Write};

impl Cse {
    pub(crate) async fn update(
        &self,
        req: &Request,
        orig: &Orig,
        ctx: &Ctx,
        now: Timestamp,
        dl: Deadline,
    ) -> Result<Response, Error> {
        use ResultContent::*;
        let mut res = match self.resolve(&req.to).await? {
            Target::Resource(r) => std::sync::Arc::unwrap_or_clone(r),
            Target::FanOut { group, rest } => return self.fan_out(req, group, &rest, orig, ctx, dl).await,
            Target::Latest(_) | Target::Oldest(_) => {
                return Err(Error::new(Rsc::OperationNotAllowed, "a contentInstance cannot be updated"));
            }
        };
        match res.ty {
            ResourceType::ContentInstance => {
                return Err(Error::new(Rsc::OperationNotAllowed, "a contentInstance cannot be updated"));
            }
            ResourceType::CseBase => return Err(Error::new(Rsc::OperationNotAllowed, "the CSEBase cannot be updated")),
            _ => {}
        }
        let rcn = rcn(req, Attributes, &[Nothing, Attributes, ModifiedAttributes])?;
        let changed = body_attrs(req, res.ty)?.clone();
        validate(res.ty, Operation::Update, &changed)?;
        // Changing `acpi` needs UPDATE in the `pvs` of the policies it references now; changing
        // anything else needs UPDATE in their `pv` (TS-0001 §9.6.2; ONEM2M.md §4, ACP).
        if changed.contains_key("acpi") {
            self.check_acpi_change(&res, orig).await?;
        }
        if changed.is_empty() || changed.keys().any(|k| k != "acpi") {
            self.check_access(&res, orig, Operation::Update.acop_bit()).await?;
        }

        let mut changed = changed;
        if let Some(v) = changed.get("et").filter(|v| !v.is_null()) {
            let et = self.expiration(Some(v), now)?;
            changed.insert("et".into(), Value::String(et.to_string()));
        }
        for name in ["acpi", "macp"] {
            if changed.get(name).is_some_and(|v| !v.is_null()) {
                let ids = self.normalise_acp_ids(name, changed.get(name)).await?;
                changed.insert(name.into(), ids);
            }
        }
        for (k, v) in &changed {
            if v.is_null() {
                res.attrs.remove(k);
            } else {
                res.attrs.insert(k.clone(), v.clone());
            }
        }
        if !res.attrs.contains_key("et") {
            // Removing et restores the default expiration.
            res.attrs.insert("et".into(), Value::String(self.expiration(None, now)?.to_string()));
        }
        self.check_update(&mut res, &changed).await?;
        res.attrs.insert("lt".into(), Value::String(now.to_string()));

        if res.ty == ResourceType::Subscription && changed.contains_key("nu") {
            self.within(dl, Box::pin(self.verify_subscription(&res, orig))).await?;
        }
        let updated = event(
            Some(NotificationEventType::UpdateOfResource),
            Some(Operation::Update),
            &orig.id,
            &res,
            Some(&changed),
        );
        let pending = self.pending(&res, updated).await;
        self.before(dl)?;
        let mut tx = Tx::one(Write::Update(res.clone()));
        tx.writes.extend(pending.writes());
        let out = self.store.apply(tx).await.map_err(store_error)?;
        self.cache.forget_parents(&res.srn);
        match res.ty {
            ResourceType::AccessControlPolicy => self.cache.forget_acp(res.ri()),
            ResourceType::Subscription => self.cache.forget_subs(res.pi()),
            _ => {}
        }
        // Re-read for the counters the store keeps (st, and a container's quotas applied).
        let res = self.store.get(res.ri()).await.map_err(store_error)?.unwrap_or(res);
        self.deliver(pending, &res, Some(&changed), &out).await;

        let mut resp = Response::new(Rsc::Updated, &req.rqi);
        resp.pc = result_content(&res, rcn, req.drt, Some(&changed));
        Ok(resp)
    }
}
