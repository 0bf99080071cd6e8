//! Request and response primitives (TS-0004 §6.4), with their short names for the JSON and CBOR
//! serialisations that the MQTT and WebSocket bindings carry as they are. The HTTP binding maps the
//! same fields to headers and query parameters.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    DesiredIdResultType, FilterOperation, FilterUsage, NotificationEventType, Operation, ResourceType, ResponseType,
    ResultContent, Rsc, Timestamp,
};

/// An error that a receiver answers with: the response status code and a short reason, which the
/// bindings put in `m2m:dbg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rsc}: {dbg}")]
pub struct Error {
    pub rsc: Rsc,
    pub dbg: Cow<'static, str>,
}

impl Error {
    pub fn new(rsc: Rsc, dbg: impl Into<Cow<'static, str>>) -> Self {
        Self { rsc, dbg: dbg.into() }
    }

    pub fn bad_request(dbg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Rsc::BadRequest, dbg)
    }

    pub fn not_found(dbg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Rsc::NotFound, dbg)
    }

    pub fn no_privilege(dbg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Rsc::OriginatorHasNoPrivilege, dbg)
    }

    pub fn internal(dbg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Rsc::InternalServerError, dbg)
    }
}

/// A time given either as a timestamp or as milliseconds from now (`absRelTimestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AbsRelTime {
    Relative(i64),
    Absolute(Timestamp),
}

impl AbsRelTime {
    /// Parses a header or query value: a number of milliseconds, or a timestamp.
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(ms) = s.parse::<i64>() {
            return Some(Self::Relative(ms));
        }
        Timestamp::parse(s).ok().map(Self::Absolute)
    }

    /// The absolute time, relative ones counted from `now`.
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Self::Absolute(t) => t,
            Self::Relative(ms) => Timestamp::from_micros(now.micros().saturating_add(ms.saturating_mul(1000))),
        }
    }
}

/// Filter criteria (`fc`, TS-0004 §6.3.5.8), for conditional retrieval and discovery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterCriteria {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fu: Option<FilterUsage>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ty: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub lbl: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crb: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cra: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exb: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exa: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sza: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub szb: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cty: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lim: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ofst: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lvl: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fo: Option<FilterOperation>,
    /// Attribute filters (`atr`): the attribute's short name and the wanted value; `*` in a string
    /// value is a wildcard.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub atr: Vec<AttributeFilter>,
    /// Child attribute filters (`catr`, childAttribute): a candidate matches when one of its
    /// children has the attribute with the value. The HTTP binding's `c.` query parameters.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub catr: Vec<AttributeFilter>,
    /// Parent attribute filters (`patr`, parentAttribute): a candidate matches when its parent has
    /// the attribute with the value. The HTTP binding's `p.` query parameters.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub patr: Vec<AttributeFilter>,
}

/// One attribute filter condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeFilter {
    pub nm: String,
    pub val: Value,
}

impl FilterCriteria {
    /// True when no condition is set (a `fu` alone sets none).
    pub fn has_conditions(&self) -> bool {
        let FilterCriteria {
            fu: _,
            ty,
            lbl,
            crb,
            cra,
            ms,
            us,
            sts,
            stb,
            exb,
            exa,
            sza,
            szb,
            cty,
            lim,
            ofst,
            lvl,
            fo: _,
            atr,
            catr,
            patr,
        } = self;
        !ty.is_empty()
            || !lbl.is_empty()
            || crb.is_some()
            || cra.is_some()
            || ms.is_some()
            || us.is_some()
            || sts.is_some()
            || stb.is_some()
            || exb.is_some()
            || exa.is_some()
            || sza.is_some()
            || szb.is_some()
            || !cty.is_empty()
            || lim.is_some()
            || ofst.is_some()
            || lvl.is_some()
            || !atr.is_empty()
            || !catr.is_empty()
            || !patr.is_empty()
    }

    pub fn is_discovery(&self) -> bool {
        self.fu == Some(FilterUsage::DiscoveryCriteria)
    }
}

/// The response type parameter `rt`: the type and, for asynchronous requests, where to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTypeInfo {
    pub rtv: ResponseType,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub nu: Vec<String>,
}

/// A request primitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub op: Operation,
    pub to: String,
    /// The originator as sent; absent and empty are both allowed on AE CREATE.
    #[serde(rename = "fr", skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub rqi: String,
    /// The release version indicator as sent; the receiver decides whether it is supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rvi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ty: Option<ResourceType>,
    /// The primitive content, e.g. `{"m2m:ae": {...}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pc: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcn: Option<ResultContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rt: Option<ResponseTypeInfo>,
    /// Request expiration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rqet: Option<AbsRelTime>,
    /// Result expiration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rset: Option<AbsRelTime>,
    /// Operation execution time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oet: Option<AbsRelTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ot: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drt: Option<DesiredIdResultType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fc: Option<FilterCriteria>,
    /// The attribute list of a partial retrieve (`atrl`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub atrl: Vec<String>,
    /// Event category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec: Option<u8>,
    /// Group request identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Vendor information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vsi: Option<String>,
}

impl Request {
    /// A request with only the mandatory parameters set.
    pub fn new(op: Operation, to: impl Into<String>, from: Option<String>, rqi: impl Into<String>) -> Self {
        Self {
            op,
            to: to.into(),
            from,
            rqi: rqi.into(),
            rvi: None,
            ty: None,
            pc: None,
            rcn: None,
            rt: None,
            rqet: None,
            rset: None,
            oet: None,
            ot: None,
            drt: None,
            fc: None,
            atrl: Vec::new(),
            ec: None,
            gid: None,
            vsi: None,
        }
    }

    pub fn filter(&self) -> Option<&FilterCriteria> {
        self.fc.as_ref()
    }

    pub fn is_discovery(&self) -> bool {
        self.op == Operation::Retrieve && self.fc.as_ref().is_some_and(FilterCriteria::is_discovery)
    }
}

/// A response primitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub rsc: Rsc,
    pub rqi: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rvi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pc: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(rename = "fr", skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ot: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rset: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec: Option<u8>,
    /// Content status and offset of a paginated result (`cnst`, `cnot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnst: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnot: Option<u32>,
    /// The address of a created resource, for the HTTP `Content-Location` header. Not a primitive
    /// parameter.
    #[serde(skip)]
    pub location: Option<String>,
}

impl Response {
    pub fn new(rsc: Rsc, rqi: impl Into<String>) -> Self {
        Self {
            rsc,
            rqi: rqi.into(),
            rvi: None,
            pc: None,
            to: None,
            from: None,
            ot: None,
            rset: None,
            ec: None,
            cnst: None,
            cnot: None,
            location: None,
        }
    }

    pub fn with_pc(mut self, pc: Value) -> Self {
        self.pc = Some(pc);
        self
    }

    /// The error response: its code, and the reason as `{"m2m:dbg": reason}`.
    pub fn error(rqi: impl Into<String>, e: &Error) -> Self {
        Self::new(e.rsc, rqi).with_pc(serde_json::json!({ "m2m:dbg": e.dbg }))
    }

    /// The reason of an error response, if it carries one.
    pub fn dbg(&self) -> Option<&str> {
        self.pc.as_ref()?.get("m2m:dbg")?.as_str()
    }
}

/// The notification of a subscription (`m2m:sgn`, TS-0004 §7.5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Notification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nev: Option<NotificationEvent>,
    /// Verification request, at subscription create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrq: Option<bool>,
    /// The subscription (SP-relative resource ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sur: Option<String>,
    /// Subscription deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sud: Option<bool>,
    /// The subscription's creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cr: Option<String>,
    /// The notification's creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfu: Option<String>,
}

/// The event part of a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationEvent {
    pub net: NotificationEventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rep: Option<Value>,
}

impl Notification {
    /// Wrapped as the primitive content of a NOTIFY: `{"m2m:sgn": {...}}`.
    pub fn to_pc(&self) -> Value {
        serde_json::json!({ "m2m:sgn": self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_short_names() {
        let mut r = Request::new(Operation::Create, "cse-in", Some("C".into()), "A1234");
        r.rvi = Some("4".into());
        r.ty = Some(ResourceType::Ae);
        r.pc = Some(json!({"m2m:ae": {"rn": "x", "api": "Nx", "rr": false, "srv": ["4"]}}));
        r.ot = Some(Timestamp::parse("20150910T062032").unwrap());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"op":1,"to":"cse-in","fr":"C","rqi":"A1234","rvi":"4","ty":2,
                   "pc":{"m2m:ae":{"rn":"x","api":"Nx","rr":false,"srv":["4"]}},"ot":"20150910T062032,000000"})
        );
        let back: Request = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_value::<Request>(json!({"op":1,"to":"x","rqi":"1","bogus":1})).is_err());
    }

    #[test]
    fn error_response() {
        let e = Error::new(Rsc::AppRuleValidationFailed, "App-ID revoked");
        let r = Response::error("r1", &e);
        assert_eq!(r.dbg(), Some("App-ID revoked"));
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"rsc":4126,"rqi":"r1","pc":{"m2m:dbg":"App-ID revoked"}}));
    }

    #[test]
    fn abs_rel_time() {
        let now = Timestamp::from_secs(1000);
        assert_eq!(AbsRelTime::parse("5000").unwrap().resolve(now), Timestamp::from_secs(1005));
        assert_eq!(AbsRelTime::parse("20141003T112032").unwrap().resolve(now).secs(), 1_412_335_232);
        assert!(AbsRelTime::parse("soon").is_none());
    }

    #[test]
    fn notification_shape() {
        let n = Notification {
            vrq: Some(true),
            sur: Some("/id-in/sub1".into()),
            cr: Some("Cx".into()),
            ..Default::default()
        };
        assert_eq!(n.to_pc(), json!({"m2m:sgn": {"vrq": true, "sur": "/id-in/sub1", "cr": "Cx"}}));
    }
}
