//! Resolving a `To` parameter to a resource: CSE-relative structured (`cse-in/ae/cnt`, `-/ae`) and
//! unstructured (`cnt123`), hybrid (`cnt123/la`), SP-relative (`/id-in/...`) and absolute
//! (`//sp/id-in/...`) forms, and the virtual resources `la`, `ol` and `fopt`.

use std::sync::Arc;

use onem2m::{Error, ResourceType, Rsc};

use super::{Cse, Target, store_error};
use crate::resource::Resource;

impl Cse {
    /// The CSE-relative part of a target addressed to this CSE. Other CSEs are not reachable
    /// (Warden does not forward requests).
    pub(crate) fn cse_relative<'a>(&'a self, to: &'a str) -> Result<&'a str, Error> {
        let unreachable = |what: &str| {
            Error::new(Rsc::TargetNotReachable, format!("{what} is not this CSE; requests are not forwarded"))
        };
        match onem2m::Target::parse(to).map_err(|e| Error::bad_request(e.to_string()))? {
            onem2m::Target::CseRelative(p) => Ok(p),
            onem2m::Target::SpRelative { csi, path } => {
                if csi != self.cfg.cse_ri() {
                    return Err(unreachable(&format!("/{csi}")));
                }
                Ok(if path.is_empty() { self.cfg.cse_name.as_str() } else { path })
            }
            onem2m::Target::Absolute { spi, csi, path } => {
                if spi != self.cfg.sp_id.fqdn() || csi != self.cfg.cse_ri() {
                    return Err(unreachable(&format!("//{spi}/{csi}")));
                }
                Ok(if path.is_empty() { self.cfg.cse_name.as_str() } else { path })
            }
        }
    }

    /// Resolves a target to a resource or a virtual resource; 4004 when nothing is there.
    pub(crate) async fn resolve(&self, to: &str) -> Result<Target, Error> {
        let path = self.cse_relative(to)?.trim_end_matches('/');
        if path.is_empty() {
            return Err(Error::not_found("empty target"));
        }
        let mut segments = path.split('/');
        let first = segments.next().unwrap_or_default();
        let rest: Vec<&str> = segments.collect();
        if rest.iter().any(|s| s.is_empty()) {
            return Err(Error::not_found(format!("{to} is not a valid address")));
        }

        // The structured name of the longest non-virtual prefix, and what follows it.
        let (base_srn, base) = if first == self.cfg.cse_name.as_str() || first == "-" {
            (self.cfg.cse_name.to_string(), None)
        } else {
            // Unstructured or hybrid: the first segment is a resource ID.
            let r = self.store.get(first).await.map_err(store_error)?.ok_or_else(|| not_found(to))?;
            (r.srn.clone(), Some(r))
        };

        // A virtual resource: `la`/`ol` of a container, `fopt[/more]` of a group (TS-0004 Table 6.8-1).
        // These names are virtual only under a parent of that type (and reserved there, see
        // `create::reserved_name`); elsewhere they are ordinary resource names.
        for (i, _) in rest.iter().enumerate().filter(|(_, s)| **s == "fopt") {
            if let Some(group) = self.lookup(&base_srn, &rest[..i], base.clone()).await?
                && group.ty == ResourceType::Group
            {
                let more = rest[i + 1..].join("/");
                crate::telemetry::target_type(ResourceType::Group);
                return Ok(Target::FanOut { group, rest: more });
            }
        }
        if let Some((last, parent)) = rest.split_last()
            && (*last == "la" || *last == "ol")
            && let Some(cnt) = self.container_of_instance(&base_srn, parent, base.clone()).await?
            && cnt.ty == ResourceType::Container
        {
            crate::telemetry::target_type(ResourceType::ContentInstance);
            return Ok(if *last == "la" { Target::Latest(cnt) } else { Target::Oldest(cnt) });
        }
        let r = self.lookup(&base_srn, &rest, base).await?.ok_or_else(|| not_found(to))?;
        crate::telemetry::target_type(r.ty);
        Ok(Target::Resource(Arc::new(r)))
    }

    /// Like [`Cse::resolve`], for the target of a CREATE: the CSEBase, and an AE or a container at
    /// a structured address, are served from the parent cache (see [`crate::core::AccessCache`]).
    pub(crate) async fn resolve_parent(&self, to: &str) -> Result<Target, Error> {
        let path = self.cse_relative(to)?.trim_end_matches('/');
        let structured =
            path.strip_prefix(self.cfg.cse_name.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if structured && let Some(r) = self.cache.parent(path) {
            return Ok(Target::Resource(r));
        }
        let target = self.resolve(to).await?;
        if let Target::Resource(r) = &target
            && structured
            && r.srn == path
        {
            self.cache.remember_parent(r);
        }
        Ok(target)
    }

    /// The resource whose `la` or `ol` is asked for. A container at a structured address comes from
    /// the parent cache (what the access check and the instance query need of it, its ID and its
    /// policies, is what the cache keeps current), so that reading the newest instance costs one
    /// store read.
    async fn container_of_instance(
        &self,
        base_srn: &str,
        rest: &[&str],
        base: Option<Resource>,
    ) -> Result<Option<Arc<Resource>>, Error> {
        // A structured address (no base resource read by ID) below the CSEBase.
        if base.is_none() && !rest.is_empty() {
            let srn = format!("{base_srn}/{}", rest.join("/"));
            if let Some(r) = self.cache.parent(&srn) {
                return Ok(Some(r));
            }
            let found = self.store.get_by_srn(&srn).await.map_err(store_error)?.map(Arc::new);
            if let Some(r) = &found {
                self.cache.remember_parent(r);
            }
            return Ok(found);
        }
        Ok(self.lookup(base_srn, rest, base).await?.map(Arc::new))
    }

    /// The resource at `base_srn/rest...`; `base` is the resource at `base_srn` when already known.
    async fn lookup(&self, base_srn: &str, rest: &[&str], base: Option<Resource>) -> Result<Option<Resource>, Error> {
        if rest.is_empty()
            && let Some(b) = base
        {
            return Ok(Some(b));
        }
        let mut srn = String::with_capacity(base_srn.len() + 32);
        srn.push_str(base_srn);
        for s in rest {
            srn.push('/');
            srn.push_str(s);
        }
        self.store.get_by_srn(&srn).await.map_err(store_error)
    }

    /// The content of a virtual `la`/`ol`: the newest or oldest contentInstance.
    pub(crate) async fn instance(&self, cnt: &Resource, latest: bool) -> Result<Resource, Error> {
        self.store
            .newest_or_oldest(cnt.ri(), ResourceType::ContentInstance, latest)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::not_found(format!("container {} has no instances", cnt.rn())))
    }
}

fn not_found(to: &str) -> Error {
    Error::not_found(format!("no resource at {to}"))
}
