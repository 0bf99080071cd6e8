//! DELETE: a resource and everything below it, with the notifications that follow.

use onem2m::{
    DesiredIdResultType, Error, NotificationEventType, Operation, Request, ResourceType, Response, ResultContent, Rsc,
};

use super::create::rcn;
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
                r
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
        self.remove(&res).await?;
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
    /// the parent's (`net` 4), and the subscriber of every subscription removed with it.
    pub(crate) async fn remove(&self, res: &Resource) -> Result<(), Error> {
        let own_subs = self.subscriptions_of(res.ri()).await?;
        let out = self.store.apply(Tx::one(Write::Delete(res.ri().to_owned()))).await.map_err(store_error)?;
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
        self.emit_to(&own_subs, NotificationEventType::DeleteOfResource, res, None).await;
        if let Ok(Some(parent)) = self.store.get(res.pi()).await {
            self.emit(&parent, NotificationEventType::DeleteOfDirectChild, res, None).await;
        }
        self.deletion_notices(&out.removed_subscriptions).await;
        Ok(())
    }
}
