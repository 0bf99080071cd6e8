//! DELETE: a resource and everything below it, with the notifications that follow.

use onem2m::{
    DesiredIdResultType, Error, NotificationEventType, Operation, Request, ResourceType, Response, ResultContent, Rsc,
};

use super::create::rcn;
use super::events::event;
use super::render::{references, with_children, with_references};
use super::{Cse, Ctx, Deadline, Orig, Target, store_error};
use crate::resource::Resource;
use crate::store::{Tx, Write};

impl Cse {
    pub(crate) async fn delete(&self, req: &Request, orig: &Orig, ctx: &Ctx, dl: Deadline) -> Result<Response, Error> {
        use ResultContent::*;
        let res = match self.resolve(&req.to).await? {
            Target::Resource(r) => {
                self.check_access(&r, orig, Operation::Delete.acop_bit()).await?;
                std::sync::Arc::unwrap_or_clone(r)
            }
            Target::Latest(cnt) => {
                self.check_access(&cnt, orig, Operation::Delete.acop_bit()).await?;
                self.instance(&cnt, true).await?
            }
            Target::Oldest(cnt) => {
                self.check_access(&cnt, orig, Operation::Delete.acop_bit()).await?;
                self.instance(&cnt, false).await?
            }
            Target::FanOut { group, rest } => return self.fan_out(req, group, &rest, orig, ctx, dl).await,
        };
        if res.ty == ResourceType::CseBase {
            return Err(Error::new(Rsc::OperationNotAllowed, "the CSEBase cannot be deleted"));
        }
        let rcn = rcn(
            req,
            Nothing,
            &[
                Nothing,
                Attributes,
                AttributesAndChildResources,
                AttributesAndChildResourceReferences,
                ChildResourceReferences,
                ChildResources,
            ],
        )?;
        let children = if matches!(rcn, Nothing | Attributes) {
            Vec::new()
        } else {
            self.store.children(res.ri(), None, self.cfg.max_children).await.map_err(store_error)?
        };
        self.before(dl)?;
        self.remove(&res, Some(&orig.id)).await?;
        let drt = req.drt.unwrap_or(DesiredIdResultType::Structured);
        let pc = match rcn {
            Nothing => None,
            Attributes => Some(res.to_wire()),
            AttributesAndChildResources => Some(with_children(&res, &children, true)),
            AttributesAndChildResourceReferences => Some(with_references(&res, &children, drt)),
            ChildResourceReferences => Some(references(&children, drt)),
            _ => Some(with_children(&res, &children, false)),
        };
        let mut resp = Response::new(Rsc::Deleted, &req.rqi);
        resp.pc = pc;
        Ok(resp)
    }

    /// Removes a resource and its subtree, then notifies: the resource's own subscribers (`net` 2),
    /// the parent's (`net` 4), and the subscriber of every subscription removed with it. `by` is the
    /// originator of the DELETE request, `None` when the CSE removes the resource itself (expiry,
    /// an expiration counter, a revoked App-ID).
    pub(crate) async fn remove(&self, res: &Resource, by: Option<&str>) -> Result<(), Error> {
        let originator = by.unwrap_or(self.cfg.cse_id.as_str());
        let own_subs = self.subscriptions_of(res.ri()).await?;
        // The resource's own subscriptions go with it: their last notification is not counted.
        let own = self.pending_of(
            &own_subs,
            event(Some(NotificationEventType::DeleteOfResource), by.map(|_| Operation::Delete), originator, res, None),
            false,
        );
        let of_parent = match self.store.get(res.pi()).await {
            Ok(Some(parent)) => {
                let ev = event(Some(NotificationEventType::DeleteOfDirectChild), None, originator, res, None);
                self.pending(&parent, ev).await
            }
            _ => Default::default(),
        };
        let mut tx = Tx::one(Write::Delete(res.ri().to_owned()));
        tx.writes.extend(of_parent.writes());
        let out = self.store.apply(tx).await.map_err(store_error)?;
        for ri in &out.removed_acps {
            self.cache.forget_acp(ri);
        }
        for sub in &out.removed_subscriptions {
            self.cache.forget_subs(sub.pi());
        }
        if let Some(a) = &self.admission {
            for ae in &out.removed_aes {
                a.forget(ae);
            }
        }
        self.cache.forget_subs(res.ri());
        self.cache.forget_parents(&res.srn);
        self.deliver(own.join(of_parent), res, None, &out).await;
        self.deletion_notices(&out.removed_subscriptions).await;
        Ok(())
    }
}
