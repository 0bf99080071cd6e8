//! Subscriptions and notifications (TS-0001 §10.2.10, TS-0004 §7.5.1): which subscriptions an event
//! notifies (by their criteria, see [`super::subscription`]), what each notification carries
//! (`nct`), the expiration counter (`exc`), and the deletion notice to the subscriber (`su`).
//! Delivery is the notifier's: this module only queues.
//!
//! Which subscriptions an event notifies is decided before the event's transaction, so that each
//! notification of a subscription with `exc` is counted in that same transaction (the count
//! survives a restart and is never exceeded); the notifications are queued once it committed.

use onem2m::{NotificationContentType, NotificationEventType, Operation};
use serde_json::{Map, Value, json};

use super::Cse;
use super::access::acor_matches;
use super::subscription::{Event, Subscribed, Trigger};
use crate::resource::Resource;
use crate::store::{Tx, TxOutcome, Write};

/// One notification to send once the event is committed.
#[derive(Debug)]
struct Item {
    sub: Resource,
    trigger: Trigger,
    /// The subscription's `exc`, when it has one: the notification is counted against it.
    limit: Option<u64>,
}

/// The notifications an event causes, decided before its transaction.
#[derive(Debug, Default)]
#[must_use = "deliver the notifications once the event is committed"]
pub(crate) struct Pending {
    items: Vec<Item>,
}

impl Pending {
    /// The counting writes to add to the event's transaction.
    pub(crate) fn writes(&self) -> impl Iterator<Item = Write> + '_ {
        self.items
            .iter()
            .filter_map(|i| i.limit.map(|limit| Write::CountNotification { sub: i.sub.ri().to_owned(), limit }))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn join(mut self, other: Pending) -> Pending {
        self.items.extend(other.items);
        self
    }
}

impl Cse {
    /// The notifications the subscriptions of `on` get for `ev`.
    pub(crate) async fn pending(&self, on: &Resource, ev: Event<'_>) -> Pending {
        match self.subscriptions_of(on.ri()).await {
            Ok(subs) => self.pending_of(&subs, ev, true),
            Err(e) => {
                tracing::warn!(ri = on.ri(), error = %e, "cannot read subscriptions");
                Pending::default()
            }
        }
    }

    /// The notifications `subs` get for `ev`; `count` false for subscriptions that the event's
    /// transaction removes anyway.
    pub(crate) fn pending_of(&self, subs: &[Subscribed], ev: Event<'_>, count: bool) -> Pending {
        let items = subs
            .iter()
            // A subscription is not told about itself (its own creation under the subscribed-to resource).
            .filter(|s| s.res.ri() != ev.rep.ri())
            .filter_map(|Subscribed { res: sub, criteria }| {
                let trigger =
                    criteria.as_ref()?.trigger(&ev, |org| acor_matches(&self.normalise_id(org), ev.originator))?;
                let limit = if count { sub.get_u64("exc") } else { None };
                Some(Item { sub: sub.clone(), trigger, limit })
            })
            .collect();
        Pending { items }
    }

    /// Queues the notifications of a committed event about `rep`, and removes the subscriptions
    /// whose expiration counter was reached.
    pub(crate) async fn deliver(
        &self,
        pending: Pending,
        rep: &Resource,
        modified: Option<&Map<String, Value>>,
        out: &TxOutcome,
    ) {
        for item in pending.items {
            let mut expired = false;
            if let Some(limit) = item.limit {
                match out.counted.iter().find(|(ri, _)| ri == item.sub.ri()).and_then(|(_, n)| *n) {
                    Some(n) => expired = n >= limit,
                    // The counter had been reached (its removal did not happen) or the
                    // subscription is gone: nothing more is sent.
                    None => {
                        self.expire(&item.sub).await;
                        continue;
                    }
                }
            }
            self.send(&item.sub, &item.trigger, rep, modified).await;
            if expired {
                self.expire(&item.sub).await;
            }
        }
    }

    /// Delivers the notifications of an operation that wrote nothing (a monitored retrieve): their
    /// counts are a transaction of their own.
    pub(crate) async fn deliver_now(&self, pending: Pending, rep: &Resource) {
        if pending.is_empty() {
            return;
        }
        let tx = Tx { writes: pending.writes().collect() };
        let out = if tx.writes.is_empty() {
            TxOutcome::default()
        } else {
            match self.store.apply(tx).await {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count notifications; none sent");
                    return;
                }
            }
        };
        self.deliver(pending, rep, None, &out).await;
    }

    /// Queues one notification of `sub`.
    async fn send(&self, sub: &Resource, trigger: &Trigger, rep: &Resource, modified: Option<&Map<String, Value>>) {
        let nct = sub.get_u64("nct").and_then(|n| NotificationContentType::from_num(n as i64));
        let representation = match nct {
            Some(NotificationContentType::ResourceId) => json!({"m2m:uri": rep.ri()}),
            Some(NotificationContentType::ModifiedAttributes) => match modified {
                Some(m) => json!({ rep.ty.member_name(): m }),
                None => rep.to_wire(),
            },
            _ => rep.to_wire(),
        };
        let mut nev = json!({"rep": representation});
        if let Some(net) = trigger.net {
            nev["net"] = json!(net.num());
        }
        if let Some(om) = &trigger.om {
            nev["om"] = om.clone();
        }
        let mut sgn = json!({"nev": nev, "sur": self.sp_relative(sub.ri())});
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
    }

    /// Removes a subscription whose expiration counter was reached.
    async fn expire(&self, sub: &Resource) {
        match Box::pin(self.remove(sub, None)).await {
            Ok(()) => {}
            Err(e) if e.rsc == onem2m::Rsc::NotFound => {}
            Err(e) => {
                tracing::warn!(ri = sub.ri(), error = %e, "cannot delete a subscription at its expiration counter")
            }
        }
    }

    /// Tells the subscriber (`su`) of each removed subscription that it is gone.
    pub(crate) async fn deletion_notices(&self, removed: &[Resource]) {
        for sub in removed.iter().filter(|s| s.ty == onem2m::ResourceType::Subscription) {
            let Some(su) = sub.get_str("su") else { continue };
            let pc = json!({"m2m:sgn": {"sud": true, "sur": self.sp_relative(sub.ri())}});
            match self.notify_target(su).await {
                Ok(t) if !t.urls.is_empty() => self.notifier.enqueue(t, pc),
                _ => tracing::debug!(su, "subscriber of a deleted subscription cannot be reached"),
            }
        }
    }
}

/// An event of `op` by `originator` about `rep`.
pub(crate) fn event<'a>(
    net: Option<NotificationEventType>,
    op: Option<Operation>,
    originator: &'a str,
    rep: &'a Resource,
    modified: Option<&'a Map<String, Value>>,
) -> Event<'a> {
    Event { net, op, originator, rep, modified }
}
