//! A hosted resource as the CSE keeps it: its type, its structured name, who created it, and its
//! attributes under their short names. The attribute map is the representation sent on the wire
//! (inside `m2m:<type>`); the other fields are indexes and bookkeeping that are never sent.

use onem2m::{ResourceType, Timestamp};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub ty: ResourceType,
    /// The structured resource name relative to the CSE, without a leading `/`: `cse-in/ae/cnt`.
    pub srn: String,
    /// The originator that created it, for the default access rule (creator only) when the resource
    /// has no `acpi`. Always set, whether or not the `cr` attribute was asked for.
    pub creator: String,
    pub attrs: Map<String, Value>,
    /// What other modules keep with a resource and never send: the admission binding of an AE.
    pub meta: Option<Value>,
}

impl Resource {
    /// A resource without metadata.
    pub fn new(ty: ResourceType, srn: String, creator: String, attrs: Map<String, Value>) -> Self {
        Self { ty, srn, creator, attrs, meta: None }
    }

    fn str_attr(&self, name: &str) -> &str {
        self.attrs.get(name).and_then(Value::as_str).unwrap_or_default()
    }

    fn time_attr(&self, name: &str) -> Timestamp {
        self.attrs.get(name).and_then(Value::as_str).and_then(|s| Timestamp::parse(s).ok()).unwrap_or_default()
    }

    pub fn ri(&self) -> &str {
        self.str_attr("ri")
    }

    pub fn pi(&self) -> &str {
        self.str_attr("pi")
    }

    pub fn rn(&self) -> &str {
        self.str_attr("rn")
    }

    pub fn ct(&self) -> Timestamp {
        self.time_attr("ct")
    }

    pub fn lt(&self) -> Timestamp {
        self.time_attr("lt")
    }

    /// The expiration time; [`Timestamp::MAX`] when there is none (the CSEBase).
    pub fn et(&self) -> Timestamp {
        match self.attrs.get("et").and_then(Value::as_str) {
            Some(s) => Timestamp::parse(s).unwrap_or(Timestamp::MAX),
            None => Timestamp::MAX,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.attrs.get(name)
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }

    pub fn get_u64(&self, name: &str) -> Option<u64> {
        self.attrs.get(name).and_then(Value::as_u64)
    }

    /// A list-of-strings attribute, empty when absent.
    pub fn str_list(&self, name: &str) -> Vec<&str> {
        self.attrs
            .get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The `cs` of a contentInstance (0 for other types): what it adds to its container's `cbs`.
    pub fn content_size(&self) -> u64 {
        self.get_u64("cs").unwrap_or(0)
    }

    /// `{"m2m:<type>": {attributes}}`.
    pub fn to_wire(&self) -> Value {
        let mut m = Map::with_capacity(1);
        m.insert(self.ty.member_name().to_owned(), Value::Object(self.attrs.clone()));
        Value::Object(m)
    }

    /// Only the attributes named in `names`, wrapped like [`Resource::to_wire`].
    pub fn to_wire_partial(&self, names: &[String]) -> Value {
        let attrs: Map<String, Value> =
            names.iter().filter_map(|n| self.attrs.get(n).map(|v| (n.clone(), v.clone()))).collect();
        let mut m = Map::with_capacity(1);
        m.insert(self.ty.member_name().to_owned(), Value::Object(attrs));
        Value::Object(m)
    }
}
