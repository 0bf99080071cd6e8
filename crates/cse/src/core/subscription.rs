//! A subscription's event notification criteria (`enc`, TS-0004 §6.3.5.7; TS-0001 §9.6.8), checked
//! when the subscription is created or updated and evaluated for every event:
//! - `net`: the event types, 1 update (the default), 2 delete, 3 create of a direct child, 4 delete
//!   of a direct child; 5–8 are refused (retrieve of an empty container, AE triggers, blocking
//!   updates and missing data are not produced by this CSE);
//! - `chty`: for events 3 and 4, the child's resource types;
//! - `atr`: for event 1, the attributes of which at least one must have been modified (names), or
//!   must have been modified to a value (`{"nm", "val"}`);
//! - `crb`, `cra`, `ms`, `us`, `sts`, `stb`, `exb`, `exa`, `sza`, `szb`: conditions on the resource
//!   the notification is about (the subscribed-to resource, or the child for events 3 and 4), with
//!   the meaning they have as filter criteria (`sza`/`szb` hold only for resources with a size, `cs`);
//! - `om` (operation monitor): a list of `{ops, org}`; the subscription is told of every operation
//!   `ops` (1–5, one or a list; all when absent) by an originator matching `org` (IDs or wildcards;
//!   anyone when absent) on the subscribed-to resource — retrieves included — and the notification
//!   carries `om: {ops, org}`. Given together with `net`, an operation that is an event must be of
//!   one of those types too.
//!
//! `md` (missing data, for timeSeries) and any other member are refused with 4000: criteria that
//! were accepted but not evaluated would notify when the subscriber asked not to be.

use onem2m::attrs::is_known_attribute;
use onem2m::{AttributeFilter, Error, FilterCriteria, NotificationEventType, Operation, Timestamp};
use serde_json::Value;

use super::retrieve::{Related, matches};
use crate::resource::Resource;

/// One condition of `atr`.
#[derive(Debug, Clone, PartialEq)]
enum Changed {
    /// The attribute was modified.
    Name(String),
    /// The attribute was modified and now has this value (wildcards as in filter criteria).
    Value(AttributeFilter),
}

/// One entry of `om`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Monitor {
    /// Operations; empty means all.
    ops: Vec<Operation>,
    /// Originators (IDs or wildcard patterns); empty means anyone.
    pub(crate) org: Vec<String>,
}

/// Parsed event notification criteria.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Criteria {
    /// The event types asked for; `None` when `net` is absent (update only, unless `om` is given).
    net: Option<Vec<NotificationEventType>>,
    chty: Vec<u64>,
    atr: Vec<Changed>,
    /// The conditions shared with filter criteria.
    on_resource: FilterCriteria,
    pub(crate) om: Vec<Monitor>,
}

/// A subscription with its criteria, parsed once when it is loaded (the subscriptions of a
/// resource are cached together, and dropped from the cache when one of them is created, updated
/// or removed), not at every event.
#[derive(Debug, Clone)]
pub(crate) struct Subscribed {
    pub(crate) res: Resource,
    /// `None` when the stored `enc` no longer parses: such a subscription notifies nobody (stored
    /// subscriptions were validated when they were written).
    pub(crate) criteria: Option<Criteria>,
}

impl Subscribed {
    pub(crate) fn new(res: Resource) -> Self {
        let criteria = Criteria::parse(res.get("enc")).ok();
        Self { res, criteria }
    }
}

/// Why a subscription is notified of an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trigger {
    pub(crate) net: Option<NotificationEventType>,
    /// Set when an operation monitor matched: `{ops, org}` of the operation.
    pub(crate) om: Option<Value>,
}

/// What happened to a resource, as subscriptions see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event<'a> {
    /// The event type; `None` for an operation that is no event (a retrieve).
    pub(crate) net: Option<NotificationEventType>,
    /// The operation of a request that targeted the subscribed-to resource (a CREATE of a child,
    /// a RETRIEVE, UPDATE or DELETE of it); `None` when no request did (the deletion of a child,
    /// an expiry).
    pub(crate) op: Option<Operation>,
    /// The originator of the operation, normalised.
    pub(crate) originator: &'a str,
    /// The resource the notification is about.
    pub(crate) rep: &'a Resource,
    /// The attributes an update modified.
    pub(crate) modified: Option<&'a serde_json::Map<String, Value>>,
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("enc: {what}"))
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn time(name: &str, v: &Value) -> Result<Timestamp, Error> {
    v.as_str().and_then(|s| Timestamp::parse(s).ok()).ok_or_else(|| bad(format!("{name} must be a timestamp")))
}

fn count(name: &str, v: &Value) -> Result<u64, Error> {
    v.as_u64().ok_or_else(|| bad(format!("{name} must be a non-negative integer")))
}

fn operation(v: &Value) -> Option<Operation> {
    match v.as_u64()? {
        1 => Some(Operation::Create),
        2 => Some(Operation::Retrieve),
        3 => Some(Operation::Update),
        4 => Some(Operation::Delete),
        5 => Some(Operation::Notify),
        _ => None,
    }
}

fn operation_num(op: Operation) -> u8 {
    match op {
        Operation::Create => 1,
        Operation::Retrieve => 2,
        Operation::Update => 3,
        Operation::Delete => 4,
        Operation::Notify => 5,
    }
}

#[cfg(test)]
thread_local! {
    /// How many times criteria were parsed on this thread (tests count them).
    pub(crate) static PARSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Criteria {
    /// Parses `enc`; 4000 naming the member that is malformed or not supported.
    pub(crate) fn parse(enc: Option<&Value>) -> Result<Self, Error> {
        #[cfg(test)]
        PARSED.with(|n| n.set(n.get() + 1));
        let mut c = Criteria::default();
        let Some(enc) = enc else { return Ok(c) };
        let obj = enc.as_object().ok_or_else(|| bad("must be an object"))?;
        for (k, v) in obj {
            match k.as_str() {
                "net" => {
                    let list = v.as_array().ok_or_else(|| bad("net must be a list of event types"))?;
                    let mut nets = Vec::with_capacity(list.len());
                    for n in list {
                        let net = n
                            .as_i64()
                            .and_then(NotificationEventType::from_num)
                            .ok_or_else(|| bad(format!("net: {n} is not a notification event type (1-8)")))?;
                        if !matches!(
                            net,
                            NotificationEventType::UpdateOfResource
                                | NotificationEventType::DeleteOfResource
                                | NotificationEventType::CreateOfDirectChild
                                | NotificationEventType::DeleteOfDirectChild
                        ) {
                            return Err(bad(format!("net: event type {n} is not supported (1-4 are)")));
                        }
                        nets.push(net);
                    }
                    c.net = Some(nets);
                }
                "chty" => {
                    let list = v.as_array().filter(|a| a.iter().all(Value::is_u64));
                    c.chty = list
                        .ok_or_else(|| bad("chty must be a list of resource types"))?
                        .iter()
                        .filter_map(Value::as_u64)
                        .collect();
                }
                "atr" => {
                    for a in one_or_many(v) {
                        let cond = match a {
                            Value::String(name) => Changed::Name(name.clone()),
                            Value::Object(_) => Changed::Value(
                                serde_json::from_value(a.clone())
                                    .map_err(|_| bad("atr entries are attribute names or {nm, val}"))?,
                            ),
                            _ => return Err(bad("atr entries are attribute names or {nm, val}")),
                        };
                        let name = match &cond {
                            Changed::Name(n) => n,
                            Changed::Value(f) => &f.nm,
                        };
                        if !is_known_attribute(name) {
                            return Err(bad(format!("atr: {name} is not an attribute")));
                        }
                        c.atr.push(cond);
                    }
                }
                "crb" => c.on_resource.crb = Some(time(k, v)?),
                "cra" => c.on_resource.cra = Some(time(k, v)?),
                "ms" => c.on_resource.ms = Some(time(k, v)?),
                "us" => c.on_resource.us = Some(time(k, v)?),
                "exb" => c.on_resource.exb = Some(time(k, v)?),
                "exa" => c.on_resource.exa = Some(time(k, v)?),
                "sts" => c.on_resource.sts = Some(count(k, v)?),
                "stb" => c.on_resource.stb = Some(count(k, v)?),
                "sza" => c.on_resource.sza = Some(count(k, v)?),
                "szb" => c.on_resource.szb = Some(count(k, v)?),
                "om" => {
                    for (i, m) in one_or_many(v).into_iter().enumerate() {
                        let m = m.as_object().ok_or_else(|| bad(format!("om[{i}] must be an object")))?;
                        let mut monitor = Monitor::default();
                        for (mk, mv) in m {
                            match mk.as_str() {
                                "ops" => {
                                    for op in one_or_many(mv) {
                                        monitor.ops.push(operation(op).ok_or_else(|| {
                                            bad(format!("om[{i}].ops: {op} is not an operation (1-5)"))
                                        })?);
                                    }
                                }
                                "org" => {
                                    for o in one_or_many(mv) {
                                        let o = o.as_str().ok_or_else(|| bad(format!("om[{i}].org must be IDs")))?;
                                        monitor.org.push(o.to_owned());
                                    }
                                }
                                other => return Err(bad(format!("om[{i}] has an unknown member '{other}'"))),
                            }
                        }
                        c.om.push(monitor);
                    }
                }
                "md" => return Err(bad("missing data (md) applies to timeSeries, which this CSE does not host")),
                other => return Err(bad(format!("'{other}' is not a supported event notification criterion"))),
            }
        }
        Ok(c)
    }

    /// Whether (and why) the event notifies a subscription with these criteria. `org_matches`
    /// tells whether an `om` originator entry matches the event's originator.
    pub(crate) fn trigger(&self, ev: &Event<'_>, org_matches: impl Fn(&str) -> bool) -> Option<Trigger> {
        let om = if self.om.is_empty() {
            None
        } else {
            let op = ev.op?;
            let hit = self.om.iter().any(|m| {
                (m.ops.is_empty() || m.ops.contains(&op)) && (m.org.is_empty() || m.org.iter().any(|o| org_matches(o)))
            });
            if !hit {
                return None;
            }
            Some(serde_json::json!({"ops": operation_num(op), "org": ev.originator}))
        };
        match ev.net {
            Some(net) => {
                let listed = match &self.net {
                    Some(list) if !list.is_empty() => list.contains(&net),
                    // Without net: updates only, unless an operation monitor asks for operations.
                    _ => om.is_some() || net == NotificationEventType::UpdateOfResource,
                };
                if !listed {
                    return None;
                }
            }
            // An operation that is no event reaches operation monitors only.
            None if om.is_none() => return None,
            None => {}
        }
        let child_event = matches!(
            ev.net,
            Some(NotificationEventType::CreateOfDirectChild | NotificationEventType::DeleteOfDirectChild)
        );
        if child_event && !self.chty.is_empty() && !self.chty.contains(&u64::from(ev.rep.ty.num())) {
            return None;
        }
        if ev.net == Some(NotificationEventType::UpdateOfResource) && !self.atr.is_empty() {
            let modified = ev.modified?;
            let hit = self.atr.iter().any(|a| match a {
                Changed::Name(n) => modified.contains_key(n),
                Changed::Value(f) => {
                    modified.contains_key(&f.nm)
                        && matches(
                            ev.rep,
                            &FilterCriteria { atr: vec![f.clone()], ..Default::default() },
                            Related::default(),
                        )
                }
            });
            if !hit {
                return None;
            }
        }
        if !matches(ev.rep, &self.on_resource, Related::default()) {
            return None;
        }
        Some(Trigger { net: ev.net, om })
    }
}

/// Subscription attributes whose behaviour this CSE does not provide, refused (4000) rather than
/// accepted and ignored: batching (`bn`), rate limits (`rl`), pending notifications (`pn`),
/// pre-subscription notifications (`psn`), forwarding for group subscriptions (`nfu`), "latest
/// only" (`ln` true) and notification statistics (`nse` true). `nsp`, `nec` and `gpi` are kept:
/// they change nothing without the others.
pub(crate) fn check_supported(attrs: &serde_json::Map<String, Value>) -> Result<(), Error> {
    for (name, what) in [
        ("bn", "batched notifications"),
        ("rl", "rate limits"),
        ("pn", "pending notifications"),
        ("psn", "pre-subscription notifications"),
        ("nfu", "notification forwarding"),
    ] {
        if attrs.get(name).is_some_and(|v| !v.is_null()) {
            return Err(Error::bad_request(format!("{name}: {what} are not supported by this CSE")));
        }
    }
    for (name, what) in [("ln", "latest notify"), ("nse", "notification statistics")] {
        if attrs.get(name).and_then(Value::as_bool) == Some(true) {
            return Err(Error::bad_request(format!("{name}: {what} is not supported by this CSE")));
        }
    }
    Ok(())
}

/// `su` (subscriberURI): an http(s) URL, or an AE-ID or CSE-ID, where the deletion notice goes.
pub(crate) fn check_subscriber(su: Option<&Value>) -> Result<(), Error> {
    let Some(su) = su.and_then(Value::as_str) else { return Ok(()) };
    let url = super::types::is_url(su);
    // A CSE-ID must be written SP-relative or absolute: a bare word would be taken for one.
    let entity = match onem2m::Originator::parse(su) {
        Ok(onem2m::Originator::Ae(_)) => true,
        Ok(onem2m::Originator::Cse { .. }) => su.starts_with('/'),
        _ => false,
    };
    if url || entity {
        Ok(())
    } else {
        Err(Error::bad_request(format!("su: {su:?} is neither an http(s) URL nor an AE-ID or CSE-ID")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onem2m::ResourceType;
    use serde_json::json;

    fn cin(cs: u64) -> Resource {
        let attrs =
            json!({"ri": "i", "cs": cs, "ct": "20240101T000000", "lt": "20240101T000000", "et": "20300101T000000"});
        Resource::new(
            ResourceType::ContentInstance,
            "cse-in/a/c/i".into(),
            "C".into(),
            attrs.as_object().unwrap().clone(),
        )
    }

    fn ev<'a>(net: Option<NotificationEventType>, op: Operation, rep: &'a Resource) -> Event<'a> {
        Event { net, op: Some(op), originator: "Cbob", rep, modified: None }
    }

    #[test]
    fn parsing() {
        Criteria::parse(Some(&json!({"net": [1, 2, 3, 4], "chty": [4], "atr": ["lbl", {"nm": "mni", "val": 5}],
            "crb": "20300101T000000", "sza": 2, "om": [{"ops": [1, 3], "org": ["C*"]}, {"ops": 2}]})))
        .unwrap();
        for bad in [
            json!({"net": [5]}),
            json!({"net": [9]}),
            json!({"net": 1}),
            json!({"md": {"num": 1, "dur": "PT1M"}}),
            json!({"bogus": 1}),
            json!({"atr": ["nope"]}),
            json!({"atr": [{"nm": "lbl"}]}),
            json!({"crb": "tomorrow"}),
            json!({"sza": -1}),
            json!({"om": [{"ops": 9}]}),
            json!({"om": [{"who": "x"}]}),
            json!([]),
        ] {
            assert!(Criteria::parse(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscription_attributes() {
        let attrs = |v: Value| v.as_object().unwrap().clone();
        check_supported(&attrs(json!({"nu": ["x"], "ln": false, "nse": false, "nsp": 1, "nec": 2}))).unwrap();
        for bad in [
            json!({"bn": {"num": 2}}),
            json!({"rl": {"mnn": 1}}),
            json!({"pn": 1}),
            json!({"psn": 1}),
            json!({"nfu": "http://x"}),
            json!({"ln": true}),
            json!({"nse": true}),
        ] {
            assert!(check_supported(&attrs(bad.clone())).is_err(), "{bad}");
        }
        for ok in [
            "http://127.0.0.1:9/x",
            "https://h",
            "Cabc",
            "/id-in/Cabc",
            "//sp.example.com/id-in/Cx",
            "//sp.example.com/Sx",
            "/id-mn",
        ] {
            check_subscriber(Some(&json!(ok))).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "nowhere", "mqtt://broker/t", "http://", "C", "S", "a b"] {
            assert!(check_subscriber(Some(&json!(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn events_and_conditions() {
        use NotificationEventType::*;
        let rep = cin(10);
        let c = |v: Value| Criteria::parse(Some(&v)).unwrap();
        let anyone = |_: &str| true;
        // No net: updates only.
        assert!(c(json!({})).trigger(&ev(Some(UpdateOfResource), Operation::Update, &rep), anyone).is_some());
        assert!(c(json!({})).trigger(&ev(Some(CreateOfDirectChild), Operation::Create, &rep), anyone).is_none());
        // chty for child events; size conditions on the child.
        let child = c(json!({"net": [3], "chty": [4], "sza": 5}));
        assert!(child.trigger(&ev(Some(CreateOfDirectChild), Operation::Create, &rep), anyone).is_some());
        assert!(child.trigger(&ev(Some(CreateOfDirectChild), Operation::Create, &cin(4)), anyone).is_none());
        assert!(
            c(json!({"net": [3], "szb": 5}))
                .trigger(&ev(Some(CreateOfDirectChild), Operation::Create, &rep), anyone)
                .is_none()
        );
        assert!(
            c(json!({"net": [3], "crb": "20200101T000000"}))
                .trigger(&ev(Some(CreateOfDirectChild), Operation::Create, &rep), anyone)
                .is_none()
        );
        // atr: a listed attribute must have been modified (to the value, when given).
        let mut modified = serde_json::Map::new();
        modified.insert("lbl".into(), json!(["x"]));
        let upd = Event { modified: Some(&modified), ..ev(Some(UpdateOfResource), Operation::Update, &rep) };
        assert!(c(json!({"atr": ["lbl", "mni"]})).trigger(&upd, anyone).is_some());
        assert!(c(json!({"atr": ["mni"]})).trigger(&upd, anyone).is_none());
        assert!(c(json!({"atr": [{"nm": "cs", "val": 10}]})).trigger(&upd, anyone).is_none(), "cs was not modified");
        let mut modified = modified.clone();
        modified.insert("cs".into(), json!(10));
        let upd = Event { modified: Some(&modified), ..ev(Some(UpdateOfResource), Operation::Update, &rep) };
        assert!(c(json!({"atr": [{"nm": "cs", "val": 10}]})).trigger(&upd, anyone).is_some());
        assert!(c(json!({"atr": [{"nm": "cs", "val": 11}]})).trigger(&upd, anyone).is_none());
        // om: operations, retrieves included, by matching originators.
        let om = c(json!({"om": {"ops": [2, 3], "org": "Cbob"}}));
        let read = ev(None, Operation::Retrieve, &rep);
        let t = om.trigger(&read, |o| o == "Cbob").unwrap();
        assert_eq!(t, Trigger { net: None, om: Some(json!({"ops": 2, "org": "Cbob"})) });
        assert!(om.trigger(&read, |o| o == "Calice").is_none());
        assert!(om.trigger(&ev(Some(DeleteOfResource), Operation::Delete, &rep), anyone).is_none());
        assert!(om.trigger(&ev(Some(UpdateOfResource), Operation::Update, &rep), anyone).is_some());
        assert!(c(json!({})).trigger(&read, anyone).is_none(), "a retrieve is no event");
        // om with net: an event must be of the listed types too.
        let both = c(json!({"net": [2], "om": [{}]}));
        assert!(both.trigger(&ev(Some(UpdateOfResource), Operation::Update, &rep), anyone).is_none());
        assert!(both.trigger(&ev(Some(DeleteOfResource), Operation::Delete, &rep), anyone).is_some());
        assert!(both.trigger(&read, anyone).is_some());
        let by_nobody = Event { op: None, ..ev(Some(DeleteOfResource), Operation::Delete, &rep) };
        assert!(both.trigger(&by_nobody, anyone).is_none(), "an expiry is no monitored operation");
        assert!(c(json!({"net": [2]})).trigger(&by_nobody, anyone).is_some());
    }
}
