//! RETRIEVE: attributes, partial retrieve (`atrl`), child resources by `rcn`, conditional retrieval,
//! and discovery (`fu=1`) with the filter criteria.

use onem2m::attrs::names;
use onem2m::{
    DesiredIdResultType, Error, FilterCriteria, FilterOperation, Operation, Request, ResourceType, Response,
    ResultContent, Rsc,
};
use serde_json::Value;

use super::create::rcn;
use super::render::{references, uri_list, with_children, with_references};
use super::{Cse, Ctx, Deadline, Orig, Target, store_error};
use crate::resource::Resource;
use crate::store::DiscoveryQuery;

impl Cse {
    pub(crate) async fn retrieve(
        &self,
        req: &Request,
        orig: &Orig,
        ctx: &Ctx,
        dl: Deadline,
    ) -> Result<Response, Error> {
        let target = self.resolve(&req.to).await?;
        let res = match target {
            Target::Resource(r) => r,
            Target::Latest(cnt) => return self.retrieve_instance(req, orig, &cnt, true).await,
            Target::Oldest(cnt) => return self.retrieve_instance(req, orig, &cnt, false).await,
            Target::FanOut { group, rest } => return self.fan_out(req, group, &rest, orig, ctx, dl).await,
        };
        if req.is_discovery() {
            return self.discover(req, &res, orig).await;
        }
        self.check_access(&res, orig, Operation::Retrieve.acop_bit()).await?;
        use ResultContent::*;
        let rcn = rcn(
            req,
            Attributes,
            &[
                Attributes,
                AttributesAndChildResources,
                AttributesAndChildResourceReferences,
                ChildResourceReferences,
                OriginalResource,
                ChildResources,
            ],
        )?;
        let res = self.with_dynamic(res);
        if matches!(rcn, Attributes | OriginalResource) {
            return self.attributes_response(req, &res);
        }
        // Child resources, filtered by the conditions of a conditional retrieval.
        let fc = req.fc.clone().unwrap_or_default();
        let children = self.store.children(res.ri(), None, self.cfg.max_children).await.map_err(store_error)?;
        let mut children: Vec<Resource> = children.into_iter().filter(|c| matches(c, &fc)).collect();
        children = self.filter_allowed(children, orig, Operation::Retrieve.acop_bit()).await?;
        page(&mut children, &fc);
        let drt = req.drt.unwrap_or(DesiredIdResultType::Structured);
        let pc = match rcn {
            AttributesAndChildResources => with_children(&res, &children, true),
            AttributesAndChildResourceReferences => with_references(&res, &children, drt),
            ChildResourceReferences => references(&children, drt),
            _ => with_children(&res, &children, false),
        };
        Ok(Response::new(Rsc::Ok, &req.rqi).with_pc(pc))
    }

    /// `la` or `ol` of a container.
    async fn retrieve_instance(
        &self,
        req: &Request,
        orig: &Orig,
        cnt: &Resource,
        latest: bool,
    ) -> Result<Response, Error> {
        self.check_access(cnt, orig, Operation::Retrieve.acop_bit()).await?;
        let cin = self.instance(cnt, latest).await?;
        self.attributes_response(req, &cin)
    }

    /// Attributes that change by themselves: the CSEBase's current time.
    fn with_dynamic(&self, mut res: Resource) -> Resource {
        if res.ty == ResourceType::CseBase {
            res.attrs.insert("ctm".into(), Value::String(self.clock.now().to_string()));
        }
        res
    }

    /// A resource's attributes, all of them or those `atrl` lists.
    fn attributes_response(&self, req: &Request, res: &Resource) -> Result<Response, Error> {
        let pc = if req.atrl.is_empty() {
            res.to_wire()
        } else {
            for a in &req.atrl {
                if !names(res.ty).any(|n| n == a) {
                    return Err(Error::bad_request(format!("atrl: {a} is not an attribute of {}", res.ty)));
                }
            }
            res.to_wire_partial(&req.atrl)
        };
        Ok(Response::new(Rsc::Ok, &req.rqi).with_pc(pc))
    }

    /// Discovery below `root`: every resource that matches the filter criteria and that the
    /// originator may discover.
    async fn discover(&self, req: &Request, root: &Resource, orig: &Orig) -> Result<Response, Error> {
        use ResultContent::*;
        let rcn = rcn(
            req,
            DiscoveryResultReferences,
            &[
                DiscoveryResultReferences,
                ChildResourceReferences,
                AttributesAndChildResources,
                AttributesAndChildResourceReferences,
                ChildResources,
            ],
        )?;
        let fc = req.fc.clone().unwrap_or_default();
        let and = fc.fo.unwrap_or(FilterOperation::And) == FilterOperation::And;
        let mut q = DiscoveryQuery {
            root_srn: root.srn.clone(),
            max_level: fc.lvl,
            limit: self.cfg.max_discovery_results,
            ..Default::default()
        };
        // With AND, the conditions on indexed columns narrow the scan; with OR and XOR every
        // candidate must be looked at.
        if and {
            q.types = fc.ty.clone();
            q.created_before = fc.crb;
            q.created_after = fc.cra;
            q.modified_since = fc.ms;
            q.unmodified_since = fc.us;
            q.expire_before = fc.exb;
            q.expire_after = fc.exa;
        }
        let found = self.store.discover(&q).await.map_err(store_error)?;
        let found: Vec<Resource> = found.into_iter().filter(|r| matches(r, &fc)).collect();
        let mut found = self.filter_allowed(found, orig, onem2m::ACOP_DISCOVERY).await?;
        page(&mut found, &fc);
        let drt = req.drt.unwrap_or(DesiredIdResultType::Structured);
        let root = self.with_dynamic(root.clone());
        let pc = match rcn {
            ChildResourceReferences => references(&found, drt),
            AttributesAndChildResources => with_children(&root, &found, true),
            AttributesAndChildResourceReferences => with_references(&root, &found, drt),
            ChildResources => with_children(&root, &found, false),
            _ => uri_list(&found, drt),
        };
        Ok(Response::new(Rsc::Ok, &req.rqi).with_pc(pc))
    }
}

/// Applies `ofst` and `lim`.
fn page(found: &mut Vec<Resource>, fc: &FilterCriteria) {
    let ofst = fc.ofst.unwrap_or(0) as usize;
    if ofst > 0 {
        found.drain(..ofst.min(found.len()));
    }
    if let Some(lim) = fc.lim {
        found.truncate(lim as usize);
    }
}

/// Evaluates the filter criteria on a resource. Within one criterion several values match if any
/// does; criteria combine by `fo` (AND by default, OR, XOR).
pub(crate) fn matches(r: &Resource, fc: &FilterCriteria) -> bool {
    let mut results: Vec<bool> = Vec::with_capacity(8);
    if !fc.ty.is_empty() {
        results.push(fc.ty.contains(&r.ty.num()));
    }
    if !fc.lbl.is_empty() {
        let labels = r.str_list("lbl");
        results.push(fc.lbl.iter().any(|l| labels.iter().any(|x| label_matches(l, x))));
    }
    if let Some(t) = fc.crb {
        results.push(r.ct() < t);
    }
    if let Some(t) = fc.cra {
        results.push(r.ct() > t);
    }
    if let Some(t) = fc.ms {
        results.push(r.lt() > t);
    }
    if let Some(t) = fc.us {
        results.push(r.lt() < t);
    }
    if let Some(t) = fc.exb {
        results.push(r.et() < t);
    }
    if let Some(t) = fc.exa {
        results.push(r.et() > t);
    }
    if let Some(n) = fc.sts {
        results.push(r.get_u64("st").is_some_and(|st| st < n));
    }
    if let Some(n) = fc.stb {
        results.push(r.get_u64("st").is_some_and(|st| st > n));
    }
    if let Some(n) = fc.sza {
        results.push(r.get_u64("cs").is_some_and(|cs| cs >= n));
    }
    if let Some(n) = fc.szb {
        results.push(r.get_u64("cs").is_some_and(|cs| cs < n));
    }
    if !fc.cty.is_empty() {
        let cnf = r.get_str("cnf").unwrap_or_default();
        let media = cnf.split(':').next().unwrap_or_default();
        results.push(fc.cty.iter().any(|c| c == media || c == cnf));
    }
    for a in &fc.atr {
        results.push(r.get(&a.nm).is_some_and(|v| value_matches(v, &a.val)));
    }
    match fc.fo.unwrap_or(FilterOperation::And) {
        FilterOperation::And => results.iter().all(|b| *b),
        FilterOperation::Or => results.is_empty() || results.iter().any(|b| *b),
        FilterOperation::Xor => results.is_empty() || results.iter().filter(|b| **b).count() == 1,
    }
}

fn label_matches(wanted: &str, label: &str) -> bool {
    wanted == label || (wanted.contains(['*', '?']) && onem2m::id::wildcard_match(wanted, label))
}

/// An attribute filter's value against an attribute: strings with wildcards, numbers and booleans
/// by value (a query gives them as text), lists if any element matches.
fn value_matches(have: &Value, want: &Value) -> bool {
    match have {
        Value::Array(items) => items.iter().any(|i| value_matches(i, want)),
        Value::String(s) => match want {
            Value::String(w) => label_matches(w, s),
            other => text_equals(other, s),
        },
        Value::Number(_) | Value::Bool(_) => match want {
            Value::String(w) => text_equals(have, w),
            other => other == have,
        },
        other => other == want,
    }
}

/// A number or boolean against its text, as a query string gives it.
fn text_equals(v: &Value, s: &str) -> bool {
    match v {
        Value::Bool(b) => s == if *b { "true" } else { "false" },
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => s.parse::<i64>() == Ok(i),
            (_, Some(u), _) => s.parse::<u64>() == Ok(u),
            (_, _, Some(f)) => s.parse::<f64>() == Ok(f),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onem2m::AttributeFilter;
    use serde_json::json;

    fn res(ty: ResourceType, attrs: Value) -> Resource {
        Resource::new(ty, "cse-in/x".into(), "C".into(), attrs.as_object().unwrap().clone())
    }

    #[test]
    fn criteria() {
        let cin = res(
            ResourceType::ContentInstance,
            json!({"ri": "c1", "lbl": ["room:kitchen", "temp"], "cs": 4, "cnf": "text/plain:0", "st": 0,
                   "ct": "20240101T000000", "lt": "20240101T000000", "et": "20250101T000000"}),
        );
        let fc = |v: Value| -> FilterCriteria { serde_json::from_value(v).unwrap() };
        assert!(matches(&cin, &fc(json!({}))));
        assert!(matches(&cin, &fc(json!({"ty": [3, 4]}))));
        assert!(!matches(&cin, &fc(json!({"ty": [3]}))));
        assert!(matches(&cin, &fc(json!({"lbl": ["room:*"]}))));
        assert!(!matches(&cin, &fc(json!({"lbl": ["x"]}))));
        assert!(matches(&cin, &fc(json!({"cra": "20231231T000000", "crb": "20240102T000000"}))));
        assert!(!matches(&cin, &fc(json!({"cra": "20240101T000000"}))));
        assert!(matches(&cin, &fc(json!({"exb": "20260101T000000", "exa": "20241231T000000"}))));
        assert!(matches(&cin, &fc(json!({"sza": 4, "szb": 5}))));
        assert!(!matches(&cin, &fc(json!({"szb": 4}))));
        assert!(matches(&cin, &fc(json!({"cty": ["text/plain"]}))));
        assert!(!matches(&cin, &fc(json!({"stb": 0}))));
        // OR and XOR
        assert!(matches(&cin, &fc(json!({"ty": [3], "lbl": ["temp"], "fo": 2}))));
        assert!(!matches(&cin, &fc(json!({"ty": [3], "lbl": ["x"], "fo": 2}))));
        assert!(!matches(&cin, &fc(json!({"ty": [4], "lbl": ["temp"], "fo": 3}))));
        assert!(matches(&cin, &fc(json!({"ty": [4], "lbl": ["x"], "fo": 3}))));
        // attribute filters
        let mut f = FilterCriteria {
            atr: vec![AttributeFilter { nm: "cnf".into(), val: json!("text/*") }],
            ..Default::default()
        };
        assert!(matches(&cin, &f));
        f.atr = vec![AttributeFilter { nm: "cs".into(), val: json!("4") }];
        assert!(matches(&cin, &f));
        f.atr = vec![AttributeFilter { nm: "lbl".into(), val: json!("temp") }];
        assert!(matches(&cin, &f));
        f.atr = vec![AttributeFilter { nm: "nope".into(), val: json!("x") }];
        assert!(!matches(&cin, &f));
    }
}
