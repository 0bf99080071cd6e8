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
//! Every scan has a budget, [`CseConfig::max_discovery_scan`](crate::config::CseConfig): the
//! resources it examines (candidates, and the children `c.` filters read) are counted, and when the
//! budget runs out the answer is the page found so far, partial, with the `cnot` to continue from.
//! Because `ofst` counts matches, a continuation would have to scan everything before it again;
//! so the CSE remembers where each cut-short scan stopped (a bounded cache, per originator, target
//! and filter criteria) and continues from there when the continuation comes. Without that entry
//! (it was evicted, or the CSE restarted) the scan starts over, and a continuation that again runs
//! out of budget before its `ofst` answers nothing but the same `cnot` and remembers where it
//! stopped, so the next one makes progress. Resources removed meanwhile before that point are still
//! counted in `ofst`.
//!
//! A retrieve with child resources (`rcn` 4, 5, 6, 8) is the same scan of the children, one level
//! deep, with the conditions of a conditional retrieval, at most `max_children` results, and the
//! same budget: a container with millions of instances is never read whole.
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
use crate::store::{DiscoveryCursor, DiscoveryQuery};

/// Discovery candidates read from the store at a time.
const PAGE: usize = 1000;
/// The same when child attribute filters read the children of every candidate.
const PAGE_WITH_CHILDREN: usize = 20;
/// How many children of a candidate a child attribute filter looks at (the oldest).
pub(crate) const MAX_CHILDREN_FILTERED: usize = 1000;
/// Content status 1: the result is partial (TS-0004 §6.3.4.2.44; 2 is full content).
const CONTENT_PARTIAL: u8 = 1;
/// How many cut-short scans the CSE remembers where to continue.
const MAX_CONTINUATIONS: usize = 1024;

/// Where cut-short scans stopped, by their continuation: the originator, the target, the filter
/// criteria without `ofst` and `lim`, and the `ofst` that continues them (the `cnot` sent). The
/// oldest entry goes first.
#[derive(Debug, Default)]
pub(crate) struct Continuations {
    at: HashMap<String, Resume>,
    order: std::collections::VecDeque<String>,
}

/// A scan to continue: after `cursor`, with `matched` matches before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    cursor: DiscoveryCursor,
    matched: usize,
}

impl Continuations {
    fn get(&self, key: &str) -> Option<Resume> {
        self.at.get(key).copied()
    }

    fn put(&mut self, key: String, r: Resume) {
        if self.at.insert(key.clone(), r).is_none() {
            self.order.push_back(key);
            while self.order.len() > MAX_CONTINUATIONS {
                if let Some(old) = self.order.pop_front() {
                    self.at.remove(&old);
                }
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.at.clear();
        self.order.clear();
    }
}

/// What identifies a scan apart from its window: who asks, for what, below what.
fn scan_key(orig: &str, root: &Resource, acop: u32, fc: &FilterCriteria) -> String {
    let conditions = FilterCriteria { ofst: None, lim: None, ..fc.clone() };
    let fc = serde_json::to_string(&conditions).unwrap_or_default();
    format!("{orig}\n{}\n{acop}\n{fc}", root.ri())
}

fn continuation(key: &str, ofst: usize) -> String {
    format!("{key}\n{ofst}")
}

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
    /// The scan budget ran out before the scan ended: the answer is partial.
    cut: bool,
    /// Where the scan stopped: after the last result taken, or after the last resource examined
    /// when the budget ran out.
    stopped: Option<DiscoveryCursor>,
}

impl Collected {
    /// Takes matches in order; false once the window is full and one more was seen.
    fn take(&mut self, w: Window, r: Resource, at: Option<DiscoveryCursor>) -> bool {
        if self.skipped < w.skip {
            self.skipped += 1;
            true
        } else if self.found.len() < w.want {
            self.found.push(r);
            self.stopped = at;
            true
        } else {
            self.more = true;
            false
        }
    }

    /// The budget ran out with the scan at `next`.
    fn cut_at(&mut self, next: DiscoveryCursor) {
        self.cut = true;
        self.stopped = Some(next);
    }

    fn partial(&self) -> bool {
        self.more || self.cut
    }

    /// Where a continuation of this result resumes.
    fn resume(&self) -> Option<Resume> {
        let cursor = self.stopped.filter(|_| self.partial())?;
        Some(Resume { cursor, matched: self.skipped + self.found.len() })
    }

    /// The response's content status and offset when the result is partial.
    fn mark(&self, w: Window, resp: &mut Response) {
        if self.partial() {
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

/// A scan of a subtree for the results of a [`Window`].
struct Scan<'a> {
    root: &'a Resource,
    fc: &'a FilterCriteria,
    /// The operation the originator must be allowed on each result.
    acop: u32,
    window: Window,
    /// Direct children only (a retrieve with child resources), whatever `lvl` says.
    children_only: bool,
}

/// The store query for the conditions of `fc` on indexed columns below `root`.
fn indexed_query(root: &Resource, fc: &FilterCriteria, max_level: Option<u32>) -> DiscoveryQuery {
    let mut q = DiscoveryQuery { root_srn: root.srn.clone(), max_level, ..Default::default() };
    // With AND, the conditions on indexed columns narrow the scan; with OR and XOR every
    // candidate must be looked at.
    if fc.fo.unwrap_or(FilterOperation::And) == FilterOperation::And {
        q.types = fc.ty.clone();
        q.created_before = fc.crb;
        q.created_after = fc.cra;
        q.modified_since = fc.ms;
        q.unmodified_since = fc.us;
        q.expire_before = fc.exb;
        q.expire_after = fc.exa;
    }
    q
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
            Target::Resource(r) => std::sync::Arc::unwrap_or_clone(r),
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
        let scan = Scan { root: &res, fc: &fc, acop: Operation::Retrieve.acop_bit(), window, children_only: true };
        let got = self.scan(scan, orig).await?;
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
        examined: &mut usize,
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
            *examined += found.len();
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

    /// The results of a scan: in creation order, those that meet the filter criteria and that the
    /// originator may perform `acop` on, through the window, within the scan budget; continued
    /// where an earlier scan was cut short when this is its continuation.
    async fn scan(&self, s: Scan<'_>, orig: &Orig) -> Result<Collected, Error> {
        let (fc, window) = (s.fc, s.window);
        let mut q = indexed_query(s.root, fc, if s.children_only { Some(1) } else { fc.lvl });
        let key = scan_key(&orig.id, s.root, s.acop, fc);
        let mut got = Collected::default();
        // Only a request that names its `ofst` continues (a `cnot` it was sent); one without starts
        // over.
        let remembered =
            fc.ofst.and_then(|_| self.cache.continuations.lock().get(&continuation(&key, window.skip + 1)));
        if let Some(r) = remembered.filter(|r| r.matched <= window.skip) {
            q.after = Some(r.cursor);
            got.skipped = r.matched;
        }
        let budget = self.cfg.max_discovery_scan;
        if store_evaluates_all(fc) && self.is_privileged(&orig.id) {
            // Nothing left to filter here: the store skips and pages, within the budget.
            q.offset = window.skip - got.skipped;
            q.limit = window.want.saturating_add(1);
            q.scan_limit = Some(budget);
            let page = self.store.discover(&q).await.map_err(store_error)?;
            got.skipped += page.skipped;
            for (r, at) in page.resources.into_iter().zip(page.positions) {
                if !got.take(window, r, Some(at)) {
                    break;
                }
            }
            if let (false, Some(next)) = (got.more, page.next) {
                got.cut_at(next);
            }
        } else {
            let page_size = if needs_children(fc) { PAGE_WITH_CHILDREN } else { PAGE };
            let mut examined = 0;
            'scan: loop {
                let left = budget.saturating_sub(examined);
                if left == 0 {
                    match q.after {
                        Some(next) => got.cut_at(next),
                        None => got.cut = true,
                    }
                    break;
                }
                q.limit = page_size.min(left);
                q.scan_limit = Some(q.limit);
                let page = self.store.discover(&q).await.map_err(store_error)?;
                examined += page.examined;
                let at: HashMap<String, DiscoveryCursor> =
                    page.resources.iter().map(|r| r.ri().to_owned()).zip(page.positions.iter().copied()).collect();
                let matched = self.matching(page.resources, fc, orig, &mut examined).await?;
                for r in self.filter_allowed(matched, orig, s.acop).await? {
                    let pos = at.get(r.ri()).copied();
                    if !got.take(window, r, pos) {
                        break 'scan;
                    }
                }
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
        }
        if let Some(r) = got.resume() {
            let next_ofst = window.skip + got.found.len() + 1;
            self.cache.continuations.lock().put(continuation(&key, next_ofst), r);
        }
        Ok(got)
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
        let scan = Scan { root, fc: &fc, acop: onem2m::ACOP_DISCOVERY, window, children_only: false };
        let got = self.scan(scan, orig).await?;
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
        let at = |n| Some(DiscoveryCursor(n));
        assert!(got.take(w, r("a"), at(1)) && got.take(w, r("b"), at(2)));
        assert!(!got.take(w, r("c"), at(3)), "the window is full");
        assert_eq!(got.resume(), Some(Resume { cursor: DiscoveryCursor(2), matched: 2 }), "after the last taken");
        let mut resp = Response::new(Rsc::Ok, "x");
        got.mark(w, &mut resp);
        assert_eq!((resp.cnst, resp.cnot), (Some(CONTENT_PARTIAL), Some(3)));
        // ofst skips matches; a result that ends inside the window is complete.
        let w = Window::of(&fc(json!({"ofst": 2, "lim": 5})), 100).unwrap();
        let mut got = Collected::default();
        for ri in ["a", "b", "c"] {
            assert!(got.take(w, r(ri), None));
        }
        assert_eq!(got.found.iter().map(|x| x.ri()).collect::<Vec<_>>(), vec!["b", "c"]);
        let mut resp = Response::new(Rsc::Ok, "x");
        got.mark(w, &mut resp);
        assert_eq!((resp.cnst, resp.cnot), (None, None));
        assert_eq!(got.resume(), None, "a complete result is not continued");
        // A scan whose budget ran out before its offset: nothing found, the same offset again,
        // continued after the last resource examined.
        let w = Window::of(&fc(json!({"ofst": 5})), 100).unwrap();
        let mut got = Collected::default();
        assert!(got.take(w, r("a"), None));
        got.cut_at(DiscoveryCursor(40));
        let mut resp = Response::new(Rsc::Ok, "x");
        got.mark(w, &mut resp);
        assert_eq!((resp.cnst, resp.cnot), (Some(CONTENT_PARTIAL), Some(5)));
        assert_eq!(got.resume(), Some(Resume { cursor: DiscoveryCursor(40), matched: 1 }));
    }

    #[test]
    fn continuations_are_bounded() {
        let mut c = Continuations::default();
        let r = |n| Resume { cursor: DiscoveryCursor(n), matched: 0 };
        for n in 0..=MAX_CONTINUATIONS as i64 {
            c.put(format!("k{n}"), r(n));
        }
        assert_eq!(c.get("k0"), None, "the oldest went");
        assert_eq!(c.get("k1"), Some(r(1)));
        assert_eq!(c.at.len(), MAX_CONTINUATIONS);
        c.put("k1".into(), r(7));
        assert_eq!((c.get("k1"), c.order.len()), (Some(r(7)), MAX_CONTINUATIONS));
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
