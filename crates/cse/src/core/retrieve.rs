//! RETRIEVE: attributes, partial retrieve (`atrl`), child resources by `rcn`, conditional retrieval,
//! and discovery (`fu=1`) with the filter criteria.
//!
//! Discovery scans the subtree in creation order, one page of candidates at a time, so that memory
//! holds one page and the results asked for, never the subtree. Conditions on indexed columns (type,
//! times, level) are evaluated by the store; the others, and access control, here. When the
//! originator has full access and every condition is the store's, the store applies `ofst` and `lim`
//! itself. A result cut short by `lim` or by `max_discovery_results` says so: content status
//! (`cnst`) 1 = partial, and content offset (`cnot`) is the `ofst` that continues it (TS-0004
//! §6.3.4.2.44; the HTTP binding sends them as `X-M2M-CTS` and `X-M2M-CTO`).
//!
//! `ofst` is the 1-based position of the first result (the XSD's positiveInteger, as ACME reads it).
//! Attribute filters may name the attribute of a child (`catr`; `c.lbl` in an HTTP query) or of the
//! parent (`patr`; `p.rn`) of a candidate: the candidate matches when one of its children (the oldest
//! [`MAX_CHILDREN_FILTERED`]), or its parent, that the originator may retrieve has the value.

use std::collections::{HashMap, HashSet};

use onem2m::attrs::names;
use onem2m::{
    AttributeFilter, DesiredIdResultType, Error, FilterCriteria, FilterOperation, Operation, Request, ResourceType,
    Response, ResultContent, Rsc,
};
use serde_json::Value;

use super::create::rcn;
use super::events::{Pending, event};
use super::render::{references, uri_list, with_children, with_references};
use super::{Cse, Ctx, Deadline, Orig, Target, store_error};
use crate::resource::Resource;
use crate::store::DiscoveryQuery;

/// Discovery candidates read from the store at a time.
const PAGE: usize = 1000;
/// The same when child attribute filters read the children of every candidate.
const PAGE_WITH_CHILDREN: usize = 20;
/// How many children of a candidate a child attribute filter looks at (the oldest).
pub(crate) const MAX_CHILDREN_FILTERED: usize = 1000;
/// Content status 1: the result is partial (TS-0004 §6.3.4.2.44; 2 is full content).
const CONTENT_PARTIAL: u8 = 1;

/// True when the filter criteria name attributes of a candidate's parent (`patr`).
fn needs_parent(fc: &FilterCriteria) -> bool {
    !fc.patr.is_empty()
}

/// True when the filter criteria name attributes of a candidate's children (`catr`).
fn needs_children(fc: &FilterCriteria) -> bool {
    !fc.catr.is_empty()
}

/// The parent and the children of a candidate, for `p.` and `c.` attribute filters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Related<'a> {
    pub(crate) parent: Option<&'a Resource>,
    pub(crate) children: &'a [Resource],
}

/// Which results of a scan to return: skip the first `skip` matches, then keep `want`.
#[derive(Debug, Clone, Copy)]
struct Window {
    skip: usize,
    want: usize,
}

impl Window {
    fn of(fc: &FilterCriteria, cap: usize) -> Result<Self, Error> {
        let skip = match fc.ofst {
            Some(0) => return Err(Error::bad_request("ofst starts at 1 (the first result)")),
            Some(n) => n as usize - 1,
            None => 0,
        };
        Ok(Self { skip, want: fc.lim.map_or(cap, |l| (l as usize).min(cap)) })
    }
}

/// Results collected through a [`Window`].
#[derive(Debug, Default)]
struct Collected {
    skipped: usize,
    found: Vec<Resource>,
    /// More results exist past the window: the answer is partial.
    more: bool,
}

impl Collected {
    /// Takes matches in order; false once the window is full and one more was seen.
    fn take(&mut self, w: Window, r: Resource) -> bool {
        if self.skipped < w.skip {
            self.skipped += 1;
            true
        } else if self.found.len() < w.want {
            self.found.push(r);
            true
        } else {
            self.more = true;
            false
        }
    }

    /// The response's content status and offset when the result is partial.
    fn mark(&self, w: Window, resp: &mut Response) {
        if self.more {
            resp.cnst = Some(CONTENT_PARTIAL);
            resp.cnot = Some(u32::try_from(w.skip + self.found.len() + 1).unwrap_or(u32::MAX));
        }
    }
}

/// True when the store can evaluate every condition of `fc` (with AND).
fn store_evaluates_all(fc: &FilterCriteria) -> bool {
    fc.fo.unwrap_or(FilterOperation::And) == FilterOperation::And
        && fc.lbl.is_empty()
        && fc.sts.is_none()
        && fc.stb.is_none()
        && fc.sza.is_none()
        && fc.szb.is_none()
        && fc.cty.is_empty()
        && fc.atr.is_empty()
        && fc.catr.is_empty()
        && fc.patr.is_empty()
}

/// A retrieve's answer, and the notifications of the operation monitors it triggered (sent after
/// the answer is ready, outside its deadline).
pub(crate) type Retrieved = (Response, Option<(Pending, Resource)>);

impl Cse {
    pub(crate) async fn retrieve(
        &self,
        req: &Request,
        orig: &Orig,
        ctx: &Ctx,
        dl: Deadline,
    ) -> Result<Retrieved, Error> {
        let target = self.resolve(&req.to).await?;
        let res = match target {
            Target::Resource(r) => r,
            Target::Latest(cnt) => return Ok((self.retrieve_instance(req, orig, &cnt, true).await?, None)),
            Target::Oldest(cnt) => return Ok((self.retrieve_instance(req, orig, &cnt, false).await?, None)),
            Target::FanOut { group, rest } => return Ok((self.fan_out(req, group, &rest, orig, ctx, dl).await?, None)),
        };
        if req.is_discovery() {
            return Ok((self.discover(req, &res, orig).await?, None));
        }
        self.check_access(&res, orig, Operation::Retrieve.acop_bit()).await?;
        let resp = self.retrieve_resource(req, orig, res.clone()).await?;
        // Operation monitors (`om`) are told of retrieves of the resource itself.
        let pending = self.pending(&res, event(None, Some(Operation::Retrieve), &orig.id, &res, None)).await;
        Ok((resp, (!pending.is_empty()).then_some((pending, res))))
    }

    /// The answer to a retrieve of `res` that the originator may retrieve.
    async fn retrieve_resource(&self, req: &Request, orig: &Orig, res: Resource) -> Result<Response, Error> {
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
        let window = Window::of(&fc, self.cfg.max_children)?;
        let children = self.store.children(res.ri(), None, self.cfg.max_children).await.map_err(store_error)?;
        let children = self.matching(children, &fc, orig).await?;
        let mut got = Collected::default();
        for c in self.filter_allowed(children, orig, Operation::Retrieve.acop_bit()).await? {
            if !got.take(window, c) {
                break;
            }
        }
        let drt = req.drt.unwrap_or(DesiredIdResultType::Structured);
        let pc = match rcn {
            AttributesAndChildResources => with_children(&res, &got.found, true),
            AttributesAndChildResourceReferences => with_references(&res, &got.found, drt),
            ChildResourceReferences => references(&got.found, drt),
            _ => with_children(&res, &got.found, false),
        };
        let mut resp = Response::new(Rsc::Ok, &req.rqi).with_pc(pc);
        got.mark(window, &mut resp);
        Ok(resp)
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

    /// The candidates that meet the filter criteria, reading the parents and children that `p.`
    /// and `c.` attribute filters need in two batched reads, and only those the originator may
    /// retrieve.
    async fn matching(
        &self,
        candidates: Vec<Resource>,
        fc: &FilterCriteria,
        orig: &Orig,
    ) -> Result<Vec<Resource>, Error> {
        let (parents, children) = (needs_parent(fc), needs_children(fc));
        if !parents && !children {
            return Ok(candidates.into_iter().filter(|r| matches(r, fc, Related::default())).collect());
        }
        // With AND, a candidate that fails its own conditions needs no relatives read.
        let candidates: Vec<Resource> = if fc.fo.unwrap_or(FilterOperation::And) == FilterOperation::And {
            let own = FilterCriteria { catr: Vec::new(), patr: Vec::new(), ..fc.clone() };
            candidates.into_iter().filter(|r| matches(r, &own, Related::default())).collect()
        } else {
            candidates
        };
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let retrieve = Operation::Retrieve.acop_bit();
        let mut parent_of: HashMap<String, Resource> = HashMap::new();
        if parents {
            let pis: Vec<String> =
                candidates.iter().map(|r| r.pi().to_owned()).collect::<HashSet<_>>().into_iter().collect();
            let found = self.store.get_many(&pis).await.map_err(store_error)?;
            for p in self.filter_allowed(found, orig, retrieve).await? {
                parent_of.insert(p.ri().to_owned(), p);
            }
        }
        let mut children_of: HashMap<String, Vec<Resource>> = HashMap::new();
        if children {
            let ris: Vec<String> = candidates.iter().map(|r| r.ri().to_owned()).collect();
            let found = self.store.children_of(&ris, MAX_CHILDREN_FILTERED).await.map_err(store_error)?;
            for c in self.filter_allowed(found, orig, retrieve).await? {
                children_of.entry(c.pi().to_owned()).or_default().push(c);
            }
        }
        Ok(candidates
            .into_iter()
            .filter(|r| {
                let rel = Related {
                    parent: parent_of.get(r.pi()),
                    children: children_of.get(r.ri()).map(Vec::as_slice).unwrap_or_default(),
                };
                matches(r, fc, rel)
            })
            .collect())
    }

    /// Discovery below `root`: every resource that matches the filter criteria and that the
    /// originator may discover, from `ofst` on, at most `lim` (and `max_discovery_results`).
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
        let window = Window::of(&fc, self.cfg.max_discovery_results)?;
        let and = fc.fo.unwrap_or(FilterOperation::And) == FilterOperation::And;
        let mut q = DiscoveryQuery { root_srn: root.srn.clone(), max_level: fc.lvl, ..Default::default() };
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
        let mut got = Collected::default();
        if store_evaluates_all(&fc) && self.is_privileged(&orig.id) {
            // Nothing left to filter here: the store pages.
            q.offset = window.skip;
            q.limit = window.want.saturating_add(1);
            got.skipped = window.skip;
            for r in self.store.discover(&q).await.map_err(store_error)?.resources {
                if !got.take(window, r) {
                    break;
                }
            }
        } else {
            q.limit = if needs_children(&fc) { PAGE_WITH_CHILDREN } else { PAGE };
            'scan: loop {
                let page = self.store.discover(&q).await.map_err(store_error)?;
                let matched = self.matching(page.resources, &fc, orig).await?;
                for r in self.filter_allowed(matched, orig, onem2m::ACOP_DISCOVERY).await? {
                    if !got.take(window, r) {
                        break 'scan;
                    }
                }
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
        }
        let drt = req.drt.unwrap_or(DesiredIdResultType::Structured);
        let root = self.with_dynamic(root.clone());
        let found = &got.found;
        let pc = match rcn {
            ChildResourceReferences => references(found, drt),
            AttributesAndChildResources => with_children(&root, found, true),
            AttributesAndChildResourceReferences => with_references(&root, found, drt),
            ChildResources => with_children(&root, found, false),
            _ => uri_list(found, drt),
        };
        let mut resp = Response::new(Rsc::Ok, &req.rqi).with_pc(pc);
        got.mark(window, &mut resp);
        Ok(resp)
    }
}

/// Evaluates the filter criteria on a resource (and, for `c.`/`p.` attribute filters, on its
/// children and parent). Within one criterion several values match if any does; criteria combine
/// by `fo` (AND by default, OR, XOR). `lim`, `ofst`, `lvl` and `fu` are not conditions.
pub(crate) fn matches(r: &Resource, fc: &FilterCriteria, rel: Related<'_>) -> bool {
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
    let has = |x: &Resource, f: &AttributeFilter| x.get(&f.nm).is_some_and(|v| value_matches(v, &f.val));
    results.extend(fc.atr.iter().map(|f| has(r, f)));
    results.extend(fc.catr.iter().map(|f| rel.children.iter().any(|c| has(c, f))));
    results.extend(fc.patr.iter().map(|f| rel.parent.is_some_and(|p| has(p, f))));
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
        assert!(matches(&cin, &fc(json!({})), Related::default()));
        assert!(matches(&cin, &fc(json!({"ty": [3, 4]})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"ty": [3]})), Related::default()));
        assert!(matches(&cin, &fc(json!({"lbl": ["room:*"]})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"lbl": ["x"]})), Related::default()));
        assert!(matches(&cin, &fc(json!({"cra": "20231231T000000", "crb": "20240102T000000"})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"cra": "20240101T000000"})), Related::default()));
        assert!(matches(&cin, &fc(json!({"exb": "20260101T000000", "exa": "20241231T000000"})), Related::default()));
        assert!(matches(&cin, &fc(json!({"sza": 4, "szb": 5})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"szb": 4})), Related::default()));
        assert!(matches(&cin, &fc(json!({"cty": ["text/plain"]})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"stb": 0})), Related::default()));
        // OR and XOR
        assert!(matches(&cin, &fc(json!({"ty": [3], "lbl": ["temp"], "fo": 2})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"ty": [3], "lbl": ["x"], "fo": 2})), Related::default()));
        assert!(!matches(&cin, &fc(json!({"ty": [4], "lbl": ["temp"], "fo": 3})), Related::default()));
        assert!(matches(&cin, &fc(json!({"ty": [4], "lbl": ["x"], "fo": 3})), Related::default()));
        // attribute filters
        let mut f = FilterCriteria {
            atr: vec![AttributeFilter { nm: "cnf".into(), val: json!("text/*") }],
            ..Default::default()
        };
        assert!(matches(&cin, &f, Related::default()));
        f.atr = vec![AttributeFilter { nm: "cs".into(), val: json!("4") }];
        assert!(matches(&cin, &f, Related::default()));
        f.atr = vec![AttributeFilter { nm: "lbl".into(), val: json!("temp") }];
        assert!(matches(&cin, &f, Related::default()));
        f.atr = vec![AttributeFilter { nm: "nope".into(), val: json!("x") }];
        assert!(!matches(&cin, &f, Related::default()));
    }

    #[test]
    fn windows() {
        let r = |ri: &str| res(ResourceType::Container, json!({ "ri": ri }));
        let fc = |v: Value| -> FilterCriteria { serde_json::from_value(v).unwrap() };
        assert_eq!(Window::of(&fc(json!({"ofst": 0})), 10).unwrap_err().rsc, Rsc::BadRequest);
        // The cap bounds what lim may ask for, and a result cut by it is partial too.
        let w = Window::of(&fc(json!({"lim": 50})), 2).unwrap();
        let mut got = Collected::default();
        assert!(got.take(w, r("a")) && got.take(w, r("b")));
        assert!(!got.take(w, r("c")), "the window is full");
        let mut resp = Response::new(Rsc::Ok, "x");
        got.mark(w, &mut resp);
        assert_eq!((resp.cnst, resp.cnot), (Some(CONTENT_PARTIAL), Some(3)));
        // ofst skips matches; a result that ends inside the window is complete.
        let w = Window::of(&fc(json!({"ofst": 2, "lim": 5})), 100).unwrap();
        let mut got = Collected::default();
        for ri in ["a", "b", "c"] {
            assert!(got.take(w, r(ri)));
        }
        assert_eq!(got.found.iter().map(|x| x.ri()).collect::<Vec<_>>(), vec!["b", "c"]);
        let mut resp = Response::new(Rsc::Ok, "x");
        got.mark(w, &mut resp);
        assert_eq!((resp.cnst, resp.cnot), (None, None));
    }

    #[test]
    fn child_and_parent_attributes() {
        let cnt = res(ResourceType::Container, json!({"ri": "k", "pi": "a", "rn": "room", "lbl": ["x"]}));
        let parent = res(ResourceType::Ae, json!({"ri": "a", "rn": "house", "lbl": ["home"]}));
        let kids = [
            res(ResourceType::ContentInstance, json!({"ri": "i1", "pi": "k", "cnf": "text/plain:0", "con": "20"})),
            res(ResourceType::ContentInstance, json!({"ri": "i2", "pi": "k", "cnf": "application/json:0"})),
        ];
        let rel = Related { parent: Some(&parent), children: &kids };
        // `c.` and `p.` name the list, as the HTTP binding's query parameters do.
        let f = |conds: Vec<(&str, Value)>, fo: Option<FilterOperation>| {
            let mut fc = FilterCriteria { fo, ..Default::default() };
            for (nm, val) in conds {
                let (list, nm) = match nm.split_once('.') {
                    Some(("c", n)) => (&mut fc.catr, n),
                    Some(("p", n)) => (&mut fc.patr, n),
                    _ => (&mut fc.atr, nm),
                };
                list.push(AttributeFilter { nm: nm.into(), val });
            }
            fc
        };
        assert!(matches(&cnt, &f(vec![("c.cnf", json!("application/*"))], None), rel));
        assert!(matches(&cnt, &f(vec![("c.con", json!("20"))], None), rel));
        assert!(!matches(&cnt, &f(vec![("c.con", json!("21"))], None), rel));
        assert!(matches(&cnt, &f(vec![("p.lbl", json!("home"))], None), rel));
        assert!(!matches(&cnt, &f(vec![("p.rn", json!("room"))], None), rel));
        assert!(matches(&cnt, &f(vec![("p.rn", json!("house")), ("lbl", json!("x"))], None), rel));
        assert!(!matches(&cnt, &f(vec![("c.con", json!("20"))], None), Related::default()), "no children known");
        // As a primitive carries them.
        let prim: FilterCriteria = serde_json::from_value(
            json!({"catr": [{"nm": "con", "val": "20"}], "patr": [{"nm": "rn", "val": "house"}]}),
        )
        .unwrap();
        assert!(matches(&cnt, &prim, rel));
        assert!(!matches(&cnt, &prim, Related { parent: None, children: &kids }), "no parent known");
        let xor = Some(FilterOperation::Xor);
        assert!(!matches(&cnt, &f(vec![("p.rn", json!("house")), ("lbl", json!("x"))], xor), rel));
    }
}
