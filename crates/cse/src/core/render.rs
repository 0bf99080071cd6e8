//! How a result is put into a response's content, by result content (`rcn`) and desired identifier
//! result type (`drt`).

use onem2m::{DesiredIdResultType, ResultContent};
use serde_json::{Map, Value, json};

use crate::resource::Resource;

/// A resource's address: structured (`cse-in/ae/cnt`) or unstructured (its resource ID).
pub(crate) fn address(r: &Resource, drt: DesiredIdResultType) -> String {
    match drt {
        DesiredIdResultType::Structured => r.srn.clone(),
        DesiredIdResultType::Unstructured => r.ri().to_owned(),
    }
}

/// A child resource reference: `{nm, typ, val}`.
pub(crate) fn reference(r: &Resource, drt: DesiredIdResultType) -> Value {
    json!({"nm": r.rn(), "typ": r.ty.num(), "val": address(r, drt)})
}

/// The attributes the CSE set or changed compared with what the request gave (`rcn` 9).
fn modified(r: &Resource, requested: &Map<String, Value>) -> Value {
    let attrs: Map<String, Value> =
        r.attrs.iter().filter(|(k, v)| requested.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    json!({ r.ty.member_name(): attrs })
}

/// The content of a CREATE or UPDATE response.
pub(crate) fn result_content(
    r: &Resource,
    rcn: ResultContent,
    drt: Option<DesiredIdResultType>,
    requested: Option<&Map<String, Value>>,
) -> Option<Value> {
    let drt = drt.unwrap_or(DesiredIdResultType::Structured);
    match rcn {
        ResultContent::Nothing => None,
        ResultContent::HierarchicalAddress => Some(json!({"m2m:uri": address(r, drt)})),
        ResultContent::HierarchicalAddressAndAttributes => {
            Some(json!({"m2m:rce": {r.ty.member_name(): r.attrs, "uri": address(r, drt)}}))
        }
        ResultContent::ModifiedAttributes => Some(modified(r, requested.unwrap_or(&Map::new()))),
        _ => Some(r.to_wire()),
    }
}

/// A resource with other resources inside it, grouped by type: `{"m2m:cnt": {..., "m2m:cin": [..]}}`.
/// With `with_attributes = false` only the nested resources are inside (`rcn` 8).
pub(crate) fn with_children(r: &Resource, children: &[Resource], with_attributes: bool) -> Value {
    let mut inner = if with_attributes { r.attrs.clone() } else { Map::new() };
    for c in children {
        let entry = inner.entry(c.ty.member_name().to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::Object(c.attrs.clone()));
        }
    }
    json!({ r.ty.member_name(): inner })
}

/// A resource's attributes plus references to other resources (`rcn` 5).
pub(crate) fn with_references(r: &Resource, children: &[Resource], drt: DesiredIdResultType) -> Value {
    let mut inner = r.attrs.clone();
    inner.insert("ch".into(), Value::Array(children.iter().map(|c| reference(c, drt)).collect()));
    json!({ r.ty.member_name(): inner })
}

/// References only (`rcn` 6): `{"m2m:rrl": {"rrf": [...]}}`.
pub(crate) fn references(children: &[Resource], drt: DesiredIdResultType) -> Value {
    json!({"m2m:rrl": {"rrf": children.iter().map(|c| reference(c, drt)).collect::<Vec<_>>()}})
}

/// Addresses only (`rcn` 11 on discovery): `{"m2m:uril": [...]}`.
pub(crate) fn uri_list(found: &[Resource], drt: DesiredIdResultType) -> Value {
    json!({"m2m:uril": found.iter().map(|r| address(r, drt)).collect::<Vec<_>>()})
}
