//! Access control (TS-0001 §9.6.2): `acpi` with the `pv` of the referenced policies, an ACP's own
//! `pvs`, `acor` with originator IDs, `all` and wildcards, `acop` bit masks, the contexts of a rule
//! (`acco`: time windows and IP addresses, see [`super::context`]), the authentication flag `acaf`
//! (true: the rule applies only over a security association or with the admin token), and the
//! default when a resource has no `acpi`: only its creator. The admin originator and the CSE itself
//! have full access. `acod` (object details) is refused at create: a rule narrowed by it would grant
//! more than it says if it were ignored.
//!
//! Parsed policies and the subscriptions of each resource are cached, so that an access check or a
//! notification check costs no database round trip on the hot path, and discovery checks a whole
//! result set with one batched read of the policies it has not seen yet.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use onem2m::attrs::has_acpi;
use onem2m::{Error, ResourceType, Rsc};
use parking_lot::RwLock;
use serde_json::Value;

use super::context::{Context, RequestContext, parse_contexts, validate_contexts};
use super::retrieve::Continuations;
use super::subscription::Subscribed;
use super::{Cse, Orig, store_error};
use crate::resource::Resource;

/// Bounds on the caches; when one is full it is emptied and refilled on demand.
const MAX_CACHED_ACPS: usize = 50_000;
const MAX_CACHED_SUB_LISTS: usize = 100_000;
const MAX_CACHED_PARENTS: usize = 10_000;

/// One access control rule: who, which operations, in which contexts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Acr {
    /// Originators, normalised; `all` and wildcard patterns as given.
    pub(crate) acor: Vec<String>,
    pub(crate) acop: u32,
    /// `acco`: the rule applies in any of these; empty means in any context.
    pub(crate) contexts: Vec<Context>,
    /// `acaf`: the rule applies only to an authenticated originator.
    pub(crate) acaf: bool,
}

/// Who asks, and the circumstances a rule's contexts are checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asker<'a> {
    pub(crate) id: &'a str,
    pub(crate) authenticated: bool,
    pub(crate) rc: RequestContext,
}

/// The parsed `pv` and `pvs` of an accessControlPolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AcpRules {
    pub(crate) pv: Vec<Acr>,
    pub(crate) pvs: Vec<Acr>,
}

impl AcpRules {
    fn allows(rules: &[Acr], who: &Asker<'_>, bit: u32) -> bool {
        rules.iter().any(|r| {
            r.acop & bit != 0
                && r.acor.iter().any(|a| acor_matches(a, who.id))
                && (!r.acaf || who.authenticated)
                && (r.contexts.is_empty() || r.contexts.iter().any(|c| c.satisfied(&who.rc)))
        })
    }
}

/// Caches of the access-control and notification hot paths.
#[derive(Default)]
pub struct AccessCache {
    acps: RwLock<HashMap<String, Arc<AcpRules>>>,
    /// The subscriptions of a resource, their criteria parsed.
    subs: RwLock<HashMap<String, Arc<Vec<Subscribed>>>>,
    /// Parents of CREATE requests (the CSEBase, AEs and containers) by structured name, so that adding
    /// instances to a container reads nothing: the store's readers lose their page cache at every
    /// commit. Only their attributes are used, never the counters the store changes on its own;
    /// an entry goes when its resource is updated or removed (with everything below it).
    parents: RwLock<HashMap<String, Arc<Resource>>>,
    /// Where discoveries and retrieves of child resources that were cut short stopped.
    pub(crate) continuations: parking_lot::Mutex<Continuations>,
}

impl AccessCache {
    pub(crate) fn forget_acp(&self, ri: &str) {
        self.acps.write().remove(ri);
    }

    pub(crate) fn forget_subs(&self, parent_ri: &str) {
        self.subs.write().remove(parent_ri);
    }

    pub(crate) fn clear(&self) {
        self.acps.write().clear();
        self.subs.write().clear();
        self.parents.write().clear();
        self.continuations.lock().clear();
    }

    pub(crate) fn parent(&self, srn: &str) -> Option<Arc<Resource>> {
        self.parents.read().get(srn).cloned()
    }

    pub(crate) fn remember_parent(&self, r: &Arc<Resource>) {
        if matches!(r.ty, ResourceType::CseBase | ResourceType::Ae | ResourceType::Container) {
            let mut parents = self.parents.write();
            if parents.len() >= MAX_CACHED_PARENTS {
                parents.clear();
            }
            parents.insert(r.srn.clone(), Arc::clone(r));
        }
    }

    /// Forgets the parent at `srn` and every one below it.
    pub(crate) fn forget_parents(&self, srn: &str) {
        let mut parents = self.parents.write();
        if parents.is_empty() {
            return;
        }
        let below = format!("{srn}/");
        parents.retain(|k, _| k != srn && !k.starts_with(&below));
    }
}

/// Matches an `acor` entry against a normalised originator: `all`, an exact ID, or a pattern with
/// `*` (any run) and `?` (one character).
pub(crate) fn acor_matches(acor: &str, orig: &str) -> bool {
    acor == "all" || acor == orig || (acor.contains(['*', '?']) && onem2m::id::wildcard_match(acor, orig))
}

/// Checks the shape of `pv`/`pvs`: `{"acr": [{"acor": [..], "acop": 1..63, ...}]}`.
pub(crate) fn validate_privileges(name: &str, v: &Value) -> Result<(), Error> {
    let bad = |why: &str| Error::bad_request(format!("{name}: {why}"));
    let acr = v.get("acr").ok_or_else(|| bad("an 'acr' list is required"))?;
    let acr = acr.as_array().ok_or_else(|| bad("'acr' must be a list"))?;
    for (i, rule) in acr.iter().enumerate() {
        let obj = rule.as_object().ok_or_else(|| bad(&format!("acr[{i}] must be an object")))?;
        for key in obj.keys() {
            match key.as_str() {
                "acor" | "acop" | "acco" | "acaf" => {}
                "acod" => {
                    return Err(bad(&format!("acr[{i}].acod: access control object details are not supported")));
                }
                _ => return Err(bad(&format!("acr[{i}] has an unknown member '{key}'"))),
            }
        }
        if let Some(acco) = obj.get("acco") {
            validate_contexts(&format!("{name}: acr[{i}]"), acco)?;
        }
        if obj.get("acaf").is_some_and(|v| !v.is_boolean()) {
            return Err(bad(&format!("acr[{i}].acaf must be a boolean")));
        }
        let acor =
            obj.get("acor").and_then(Value::as_array).ok_or_else(|| bad(&format!("acr[{i}].acor must be a list")))?;
        if !acor.iter().all(Value::is_string) {
            return Err(bad(&format!("acr[{i}].acor must be a list of strings")));
        }
        match obj.get("acop").and_then(Value::as_u64) {
            Some(op) if (1..=63).contains(&op) => {}
            _ => return Err(bad(&format!("acr[{i}].acop must be a number from 1 to 63"))),
        }
    }
    Ok(())
}

impl Cse {
    fn parse_rules(&self, v: Option<&Value>) -> Vec<Acr> {
        let Some(list) = v.and_then(|v| v.get("acr")).and_then(Value::as_array) else {
            return Vec::new();
        };
        list.iter()
            .map(|r| Acr {
                acor: r
                    .get("acor")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(|s| self.normalise_id(s)).collect())
                    .unwrap_or_default(),
                acop: r.get("acop").and_then(Value::as_u64).unwrap_or(0) as u32,
                // Stored policies were validated; one that no longer parses grants nothing.
                contexts: match r.get("acco").map(parse_contexts) {
                    None => Vec::new(),
                    Some(Ok(c)) => c,
                    Some(Err(_)) => return Acr { acop: 0, ..Default::default() },
                },
                acaf: r.get("acaf").and_then(Value::as_bool).unwrap_or(false),
            })
            .collect()
    }

    /// AE-IDs of this CSE in any form become their stem; anything else stays as it is.
    pub(crate) fn normalise_id(&self, s: &str) -> String {
        match onem2m::AeId::parse(s) {
            Ok(ae) => self.local_ae_stem(&ae).unwrap_or_else(|| s.to_owned()),
            Err(_) => s.to_owned(),
        }
    }

    fn rules_of(&self, acp: &Resource) -> Arc<AcpRules> {
        Arc::new(AcpRules { pv: self.parse_rules(acp.get("pv")), pvs: self.parse_rules(acp.get("pvs")) })
    }

    /// The rules of the policies `ris`, from the cache or with one batched read. Policies that do
    /// not exist (any more) grant nothing.
    async fn policies(&self, ris: &[&str]) -> Result<Vec<Arc<AcpRules>>, Error> {
        let mut found = Vec::with_capacity(ris.len());
        let mut missing = Vec::new();
        {
            let cache = self.cache.acps.read();
            for ri in ris {
                match cache.get(*ri) {
                    Some(r) => found.push(r.clone()),
                    None => missing.push((*ri).to_owned()),
                }
            }
        }
        if !missing.is_empty() {
            let fetched = self.store.get_many(&missing).await.map_err(store_error)?;
            let mut cache = self.cache.acps.write();
            if cache.len() > MAX_CACHED_ACPS {
                cache.clear();
            }
            for acp in fetched.iter().filter(|r| r.ty == ResourceType::AccessControlPolicy) {
                let rules = self.rules_of(acp);
                cache.insert(acp.ri().to_owned(), rules.clone());
                found.push(rules);
            }
        }
        Ok(found)
    }

    /// The resource whose `acpi` governs access to `res`: itself, or its parent for types without
    /// `acpi` (contentInstance).
    async fn governing(&self, res: &Resource) -> Result<Option<Resource>, Error> {
        if has_acpi(res.ty) || res.ty == ResourceType::AccessControlPolicy {
            return Ok(None);
        }
        self.store.get(res.pi()).await.map_err(store_error)
    }

    /// The originator of a request as the rules see it, now.
    fn asker<'a>(&self, orig: &'a Orig) -> Asker<'a> {
        Asker {
            id: &orig.id,
            authenticated: orig.authenticated,
            rc: RequestContext { now: self.clock.now(), remote: orig.remote },
        }
    }

    /// Checks that `orig` may perform `bit` (an `acop` bit) on `res`; 4103 otherwise.
    pub(crate) async fn check_access(&self, res: &Resource, orig: &Orig, bit: u32) -> Result<(), Error> {
        if self.is_privileged(&orig.id) {
            return Ok(());
        }
        let who = self.asker(orig);
        let orig = who.id;
        let parent = self.governing(res).await?;
        let gov = parent.as_ref().unwrap_or(res);
        let ok = match gov.ty {
            ResourceType::AccessControlPolicy => AcpRules::allows(&self.rules_of(gov).pvs, &who, bit),
            _ => {
                let acpi = gov.str_list("acpi");
                if acpi.is_empty() {
                    gov.creator == orig
                } else {
                    self.policies(&acpi).await?.iter().any(|r| AcpRules::allows(&r.pv, &who, bit))
                }
            }
        };
        // The privacy terms of an admitted AE's profile bound every grant on its resources.
        let ok = ok && self.admission.as_ref().is_none_or(|a| a.privacy_allows(&res.srn, orig, bit));
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                Rsc::OriginatorHasNoPrivilege,
                format!("originator {orig} has no privilege for this operation on {}", res.srn),
            ))
        }
    }

    /// Checks that `orig` may perform `bit` through the fan-out point of `group` (TS-0001 §9.6.13):
    /// the `pv` of the policies in the group's `macp` decide when it has some; otherwise the
    /// group's own access control does. 4103 otherwise.
    pub(crate) async fn check_fan_out(&self, group: &Resource, orig: &Orig, bit: u32) -> Result<(), Error> {
        let macp = group.str_list("macp");
        if macp.is_empty() {
            return self.check_access(group, orig, bit).await;
        }
        if self.is_privileged(&orig.id) {
            return Ok(());
        }
        let who = self.asker(orig);
        let ok = self.policies(&macp).await?.iter().any(|r| AcpRules::allows(&r.pv, &who, bit))
            && self.admission.as_ref().is_none_or(|a| a.privacy_allows(&group.srn, who.id, bit));
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                Rsc::OriginatorHasNoPrivilege,
                format!("originator {} has no privilege for this operation through {}/fopt (macp)", who.id, group.srn),
            ))
        }
    }

    /// Checks that `orig` may change the `acpi` of a resource: UPDATE in the `pvs` of the policies it
    /// references now (TS-0001 §9.6.2.3).
    pub(crate) async fn check_acpi_change(&self, res: &Resource, orig: &Orig) -> Result<(), Error> {
        if self.is_privileged(&orig.id) {
            return Ok(());
        }
        let who = self.asker(orig);
        let orig = who.id;
        let current = res.str_list("acpi");
        let ok = if current.is_empty() {
            res.creator == orig
        } else {
            self.policies(&current)
                .await?
                .iter()
                .any(|r| AcpRules::allows(&r.pvs, &who, onem2m::Operation::Update.acop_bit()))
        };
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                Rsc::OriginatorHasNoPrivilege,
                format!("originator {orig} may not change the acpi of {}", res.srn),
            ))
        }
    }

    /// Keeps the resources `orig` may perform `bit` on, reading every policy and parent needed in
    /// at most two batched reads.
    pub(crate) async fn filter_allowed(
        &self,
        found: Vec<Resource>,
        orig: &Orig,
        bit: u32,
    ) -> Result<Vec<Resource>, Error> {
        if self.is_privileged(&orig.id) {
            return Ok(found);
        }
        let who = self.asker(orig);
        let orig = who.id;
        // Parents of the resources without acpi.
        let parent_ris: Vec<String> = found
            .iter()
            .filter(|r| !has_acpi(r.ty) && r.ty != ResourceType::AccessControlPolicy)
            .map(|r| r.pi().to_owned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let parents: HashMap<String, Resource> = if parent_ris.is_empty() {
            HashMap::new()
        } else {
            self.store
                .get_many(&parent_ris)
                .await
                .map_err(store_error)?
                .into_iter()
                .map(|p| (p.ri().to_owned(), p))
                .collect()
        };
        let gov = |r: &Resource| -> Option<Resource> {
            if has_acpi(r.ty) || r.ty == ResourceType::AccessControlPolicy {
                None
            } else {
                parents.get(r.pi()).cloned()
            }
        };
        // Every policy referenced.
        let mut acp_ris: HashSet<String> = HashSet::new();
        for r in &found {
            let g = gov(r);
            let g = g.as_ref().unwrap_or(r);
            acp_ris.extend(g.str_list("acpi").into_iter().map(str::to_owned));
        }
        let acp_ris: Vec<&str> = acp_ris.iter().map(String::as_str).collect();
        self.policies(&acp_ris).await?;
        let cache = self.cache.acps.read();
        Ok(found
            .into_iter()
            .filter(|r| self.admission.as_ref().is_none_or(|a| a.privacy_allows(&r.srn, orig, bit)))
            .filter(|r| {
                let g = gov(r);
                let g = g.as_ref().unwrap_or(r);
                if g.ty == ResourceType::AccessControlPolicy {
                    return AcpRules::allows(&self.rules_of(g).pvs, &who, bit);
                }
                let acpi = g.str_list("acpi");
                if acpi.is_empty() {
                    return g.creator == orig;
                }
                acpi.iter().any(|ri| cache.get(*ri).is_some_and(|rules| AcpRules::allows(&rules.pv, &who, bit)))
            })
            .collect())
    }

    /// The subscriptions of a resource with their criteria parsed, cached.
    pub(crate) async fn subscriptions_of(&self, ri: &str) -> Result<Arc<Vec<Subscribed>>, Error> {
        if let Some(s) = self.cache.subs.read().get(ri) {
            return Ok(s.clone());
        }
        let subs = self
            .store
            .children(ri, Some(ResourceType::Subscription), self.cfg.max_children)
            .await
            .map_err(store_error)?;
        let subs = Arc::new(subs.into_iter().map(Subscribed::new).collect::<Vec<_>>());
        let mut cache = self.cache.subs.write();
        if cache.len() > MAX_CACHED_SUB_LISTS {
            cache.clear();
        }
        cache.insert(ri.to_owned(), subs.clone());
        Ok(subs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards() {
        assert!(acor_matches("C*", "Cabc"));
        assert!(acor_matches("C?b*", "Cabxyz"));
        assert!(!acor_matches("S*", "Cabc"));
        assert!(acor_matches("all", "anyone"));
        assert!(acor_matches("Cabc", "Cabc"));
        assert!(!acor_matches("Cabc", "Cabd"));
    }

    #[test]
    fn privileges_shape() {
        validate_privileges("pv", &json!({"acr": [{"acor": ["all"], "acop": 63}]})).unwrap();
        validate_privileges("pv", &json!({"acr": []})).unwrap();
        for bad in [
            json!({}),
            json!({"acr": {}}),
            json!({"acr": [{"acor": "all", "acop": 1}]}),
            json!({"acr": [{"acor": ["all"], "acop": 0}]}),
            json!({"acr": [{"acor": ["all"], "acop": 64}]}),
            json!({"acr": [{"acor": ["all"], "acop": 1, "x": 1}]}),
            json!({"acr": [{"acor": ["all"], "acop": 1, "acod": [{"chty": [4]}]}]}),
            json!({"acr": [{"acor": ["all"], "acop": 1, "acaf": "yes"}]}),
            json!({"acr": [{"acor": ["all"], "acop": 1, "acco": [{"aclr": {"accc": ["DE"]}}]}]}),
            json!({"acr": [{"acor": ["all"], "acop": 1, "acco": [{"actw": ["every day"]}]}]}),
        ] {
            assert!(validate_privileges("pv", &bad).is_err(), "{bad}");
        }
    }

    fn who<'a>(id: &'a str, authenticated: bool, ip: &str) -> Asker<'a> {
        let now = onem2m::Timestamp::parse("20240315T090000").unwrap(); // a Friday
        Asker { id, authenticated, rc: RequestContext { now, remote: Some(ip.parse().unwrap()) } }
    }

    #[test]
    fn rule_evaluation() {
        let rules = vec![Acr { acor: vec!["Cabc".into(), "S*".into()], acop: 2 | 32, ..Default::default() }];
        let lan = "10.0.0.1";
        assert!(AcpRules::allows(&rules, &who("Cabc", false, lan), 2));
        assert!(AcpRules::allows(&rules, &who("Sdevice", false, lan), 32));
        assert!(!AcpRules::allows(&rules, &who("Cabc", false, lan), 4));
        assert!(!AcpRules::allows(&rules, &who("Cother", false, lan), 2));
    }

    #[test]
    fn contexts_and_authentication() {
        let contexts =
            parse_contexts(&json!([{"actw": ["* * 8-17 * * 1-5 *"], "acip": {"ipv4": ["10.0.0.0/8"]}}])).unwrap();
        let rules = vec![Acr { acor: vec!["all".into()], acop: 2, contexts, acaf: false }];
        assert!(AcpRules::allows(&rules, &who("Cx", false, "10.9.9.9"), 2));
        assert!(!AcpRules::allows(&rules, &who("Cx", false, "192.168.0.1"), 2), "outside the addresses");
        let mut late = who("Cx", false, "10.9.9.9");
        late.rc.now = onem2m::Timestamp::parse("20240315T190000").unwrap();
        assert!(!AcpRules::allows(&rules, &late, 2), "outside the time window");
        let authenticated_only = vec![Acr { acor: vec!["all".into()], acop: 2, acaf: true, ..Default::default() }];
        assert!(!AcpRules::allows(&authenticated_only, &who("Cx", false, "10.9.9.9"), 2));
        assert!(AcpRules::allows(&authenticated_only, &who("Cx", true, "10.9.9.9"), 2));
    }
}
