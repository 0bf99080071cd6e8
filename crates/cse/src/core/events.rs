//! Subscriptions and notifications (TS-0001 §10.2.10, TS-0004 §7.5.1): which subscriptions an event
//! matches, what each notification carries (`nct`), the expiration counter (`exc`), and the
//! deletion notice to the subscriber (`su`). Delivery is the notifier's: this module only queues.

use onem2m::{NotificationContentType, NotificationEventType, ResourceType};
use serde_json::{Map, Value, json};

use super::Cse;
use crate::resource::Resource;

/// Does `sub` ask for event `net` about `rep`?
fn wants(sub: &Resource, net: NotificationEventType, rep: &Resource) -> bool {
    let enc = sub.get("enc");
    let nets = enc.and_then(|e| e.get("net")).and_then(Value::as_array);
    let net_ok = match nets {
        Some(list) if !list.is_empty() => list.iter().any(|n| n.as_u64() == Some(u64::from(net.num()))),
        _ => net == NotificationEventType::UpdateOfResource,
    };
    if !net_ok {
        return false;
    }
    if matches!(net, NotificationEventType::CreateOfDirectChild | NotificationEventType::DeleteOfDirectChild)
        && let Some(chty) = enc.and_then(|e| e.get("chty")).and_then(Value::as_array)
        && !chty.is_empty()
    {
        return chty.iter().any(|t| t.as_u64() == Some(u64::from(rep.ty.num())));
    }
    true
}

impl Cse {
    /// Notifies the subscribers of `on` of an event about `rep` (`on` itself, or a child of it).
    pub(crate) async fn emit(
        &self,
        on: &Resource,
        net: NotificationEventType,
        rep: &Resource,
        modified: Option<&Map<String, Value>>,
    ) {
        match self.subscriptions_of(on.ri()).await {
            Ok(subs) => self.emit_to(&subs, net, rep, modified).await,
            Err(e) => tracing::warn!(ri = on.ri(), error = %e, "cannot read subscriptions"),
        }
    }

    pub(crate) async fn emit_to(
        &self,
        subs: &[Resource],
        net: NotificationEventType,
        rep: &Resource,
        modified: Option<&Map<String, Value>>,
    ) {
        // A subscription is not told about itself (its own creation under the subscribed-to resource).
        for sub in subs.iter().filter(|s| s.ri() != rep.ri() && wants(s, net, rep)) {
            let nct = sub.get_u64("nct").and_then(|n| NotificationContentType::from_num(n as i64));
            let representation = match nct {
                Some(NotificationContentType::ResourceId) => json!({"m2m:uri": rep.ri()}),
                Some(NotificationContentType::ModifiedAttributes) => match modified {
                    Some(m) => json!({ rep.ty.member_name(): m }),
                    None => rep.to_wire(),
                },
                _ => rep.to_wire(),
            };
            let mut sgn = json!({"nev": {"net": net.num(), "rep": representation}, "sur": self.sp_relative(sub.ri())});
            if let Some(cr) = sub.get_str("cr") {
                sgn["cr"] = json!(cr);
            }
            let pc = json!({ "m2m:sgn": sgn });
            for nu in sub.str_list("nu") {
                match self.notify_target(nu).await {
                    Ok(t) if !t.urls.is_empty() => self.notifier.enqueue(t, pc.clone()),
                    Ok(_) => tracing::debug!(nu, "notification target has no point of access"),
                    Err(e) => tracing::debug!(nu, error = %e, "notification target cannot be resolved"),
                }
            }
            self.count_notification(sub).await;
        }
    }

    /// Counts a notification of `sub`; at its `exc` the subscription is deleted.
    async fn count_notification(&self, sub: &Resource) {
        let Some(exc) = sub.get_u64("exc") else { return };
        let sent = {
            let mut counts = self.cache.sent.lock();
            let n = counts.entry(sub.ri().to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if sent >= exc {
            self.cache.sent.lock().remove(sub.ri());
            if let Err(e) = Box::pin(self.remove(sub)).await {
                tracing::warn!(ri = sub.ri(), error = %e, "cannot delete a subscription at its expiration counter");
            }
        }
    }

    /// Tells the subscriber (`su`) of each removed subscription that it is gone.
    pub(crate) async fn deletion_notices(&self, removed: &[Resource]) {
        for sub in removed.iter().filter(|s| s.ty == ResourceType::Subscription) {
            self.cache.sent.lock().remove(sub.ri());
            let Some(su) = sub.get_str("su") else { continue };
            let pc = json!({"m2m:sgn": {"sud": true, "sur": self.sp_relative(sub.ri())}});
            match self.notify_target(su).await {
                Ok(t) if !t.urls.is_empty() => self.notifier.enqueue(t, pc),
                _ => tracing::debug!(su, "subscriber of a deleted subscription cannot be reached"),
            }
        }
    }
}
