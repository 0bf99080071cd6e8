//! Request processing: a request primitive in, a response primitive out.
//!
//! # Architecture invariant
//! The core knows no binding (HTTP, MQTT) and no SQL. It works on [`Request`] and [`Response`],
//! reads the time from a [`Clock`], keeps resources through the [`Store`] trait and hands
//! notifications to a [`Notifier`]. Everything a binding learned about the transport that matters to
//! oneM2M (the security association) arrives in [`Ctx`].

mod access;
mod address;
mod context;
mod create;
mod delete;
mod events;
mod ids;
mod render;
mod retrieve;
mod subscription;
mod sweep;
mod types;
mod update;
mod upper_tester;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use onem2m::{
    AbsRelTime, Error, Operation, Originator, ReleaseVersion, Request, Response, ResponseType, Rsc, Timestamp,
};
use parking_lot::RwLock;
use serde_json::Value;

use crate::admission::Admission;
use crate::config::CseConfig;
use crate::resource::Resource;
use crate::store::{Store, StoreError};

pub use access::AccessCache;
pub use upper_tester::UtReply;

/// The source of `now`.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }
}

/// Where a notification goes: the `nu` entry it came from (the queue it belongs to) and the URLs to
/// try, in order, until one answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub key: String,
    pub urls: Vec<String>,
}

/// Sends notifications. Implemented by the delivery engine in [`crate::notify`].
pub trait Notifier: Send + Sync + 'static {
    /// Sends one notification now and waits for the answer, at most `timeout`: the verification
    /// request of a new subscription. The result is the receiver's response status code.
    fn send_now<'a>(
        &'a self,
        target: &'a NotifyTarget,
        pc: Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Rsc, Error>>;

    /// Queues a notification for delivery and returns at once. A full queue drops it (and counts).
    fn enqueue(&self, target: NotifyTarget, pc: Value);
}

/// The security association a request arrived over (TS-0003 §8.2): who the TLS layer says the
/// peer is. Absent on plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityAssociation {
    /// The credential's ID: the SHA-256 of the client certificate (hex).
    pub credential_id: String,
    /// The App-ID claimed in the certificate, verified against that App-ID's roots.
    pub app_id: Option<String>,
    /// The AE-ID carried in the certificate, if any.
    pub ae_id: Option<String>,
    /// The SHA-256 of the root the chain ended in.
    pub root_sha256: Option<String>,
    /// Set when the certificate was presented but did not verify: the claims above are then
    /// unverified and `root_sha256` is `None`. Every request over such an SA is refused (4106),
    /// except an AE registration, which admission decides (it may learn the App-ID's roots then).
    pub unverified: Option<Unverified>,
}

/// Why a client certificate did not verify, and the chain to check again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// `wrong_root`, `expired`, `not_yet_valid`, `unknown_app_id`, `no_app_id`, `bad_certificate`.
    pub reason: &'static str,
    pub message: String,
    /// The chain as presented (DER, end entity first).
    pub chain: Arc<[Vec<u8>]>,
}

/// The binding a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Http,
    Mqtt,
    /// The CSE's own internal requests (group fan-out).
    Internal,
}

impl Binding {
    pub fn name(self) -> &'static str {
        match self {
            Binding::Http => "http",
            Binding::Mqtt => "mqtt",
            Binding::Internal => "internal",
        }
    }
}

/// What the transport knows about a request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub binding: Binding,
    pub sa: Option<SecurityAssociation>,
    /// The size of the request body on the wire, in bytes.
    pub payload_len: usize,
    /// The request proved that it comes from the admin (the binding checked the admin token).
    pub admin_authenticated: bool,
    /// The address of the peer the request came from, for access control rules restricted to
    /// addresses (`acco`/`acip`). `None` when the binding has none.
    pub remote_addr: Option<std::net::IpAddr>,
}

impl Ctx {
    pub fn plain(binding: Binding) -> Self {
        Self { binding, sa: None, payload_len: 0, admin_authenticated: false, remote_addr: None }
    }

    /// Whether the originator is authenticated (what `acaf` asks for): over a security association
    /// whose certificate verified, or with the admin token. A certificate that did not verify
    /// proves nothing.
    pub fn authenticated(&self) -> bool {
        self.sa.as_ref().is_some_and(|sa| sa.unverified.is_none()) || self.admin_authenticated
    }
}

/// Settings the Upper Tester may change at run time (TS-0019).
#[derive(Debug, Clone)]
pub struct Tunables {
    /// The expiration given to resources without `et`; the Upper Tester may shorten it.
    pub default_expiration: Duration,
    /// How often expired resources are looked for.
    pub expiration_check: Duration,
    /// Requests without `rqet` expire after this long, when set.
    pub request_expiration: Option<Duration>,
}

impl Tunables {
    /// The settings a configuration starts with (and the Upper Tester's `Reset` restores).
    pub(crate) fn of(cfg: &CseConfig) -> Self {
        Self {
            default_expiration: cfg.default_expiration,
            expiration_check: Duration::from_secs(1),
            request_expiration: None,
        }
    }
}

/// When a request stops being worth answering: its request expiration (`rqet`), or now plus the
/// Upper Tester's short request expiration, whichever comes first.
///
/// It is checked before a write is handed to the store, and it bounds the slow steps before one (a
/// subscription's verification request, a forwarded notification, reads), but never what follows a
/// commit: a write that was committed is answered as done, with its notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Timestamp>);

impl Deadline {
    fn of(now: Timestamp, rqet: Option<AbsRelTime>, short: Option<Duration>) -> Self {
        let rqet = rqet.map(|t| t.resolve(now));
        let short = short.map(|d| now.saturating_add(d));
        Self(match (rqet, short) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// The absolute time, if there is one.
    pub(crate) fn at(self) -> Option<Timestamp> {
        self.0
    }

    fn expired() -> Error {
        Error::new(Rsc::RequestTimeout, "the request expired before it could be carried out (rqet)")
    }
}

/// The request-processing core of a CSE.
pub struct Cse {
    pub(crate) cfg: Arc<CseConfig>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: AccessCache,
    pub(crate) tunables: RwLock<Tunables>,
    pub(crate) started: RwLock<Timestamp>,
    pub(crate) admission: Option<Arc<Admission>>,
}

/// A request's originator after normalisation (AE-IDs of this CSE become their stem), with what
/// access control rules may ask about the request: where it came from and whether the originator
/// was authenticated (a security association, or the admin token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orig {
    /// The normalised form, used for access control and as `cr`.
    pub(crate) id: String,
    pub(crate) kind: Originator,
    pub(crate) remote: Option<std::net::IpAddr>,
    pub(crate) authenticated: bool,
}

impl Cse {
    /// A CSE on `store`, creating its CSEBase (and default access policy) if the store is empty.
    pub async fn start(
        cfg: CseConfig,
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        admission: Option<Arc<Admission>>,
    ) -> Result<Arc<Self>, Error> {
        let tunables = Tunables::of(&cfg);
        let now = clock.now();
        let cse = Arc::new(Self {
            cfg: Arc::new(cfg),
            store,
            notifier,
            clock,
            cache: AccessCache::default(),
            tunables: RwLock::new(tunables),
            started: RwLock::new(now),
            admission,
        });
        cse.bootstrap().await?;
        cse.restore_admissions().await?;
        Ok(cse)
    }

    /// The admission engine, when admission is on.
    pub fn admission(&self) -> Option<&Arc<Admission>> {
        self.admission.as_ref()
    }

    /// Gives the admission engine the AEs it admitted before a restart.
    async fn restore_admissions(&self) -> Result<(), Error> {
        let Some(a) = &self.admission else { return Ok(()) };
        let mut q = crate::store::DiscoveryQuery {
            root_srn: self.cfg.cse_name.to_string(),
            max_level: Some(1),
            types: vec![onem2m::ResourceType::Ae.num()],
            limit: 10_000,
            ..Default::default()
        };
        // Many AEs share an answer: each is read and its signature checked once.
        let mut kept: std::collections::HashMap<String, Option<Arc<crate::admission::profiles::Answer>>> =
            Default::default();
        loop {
            let page = self.store.discover(&q).await.map_err(store_error)?;
            for ae in &page.resources {
                let answer = match Admission::answer_key(ae) {
                    Some(key) => match kept.get(key) {
                        Some(a) => a.clone(),
                        None => {
                            let stored = self.store.answer(key).await.map_err(store_error)?;
                            let a = stored.and_then(|(body, sig)| a.adopt_kept(body, sig));
                            kept.insert(key.to_owned(), a.clone());
                            a
                        }
                    },
                    None => None,
                };
                a.restore(ae, answer);
            }
            match page.next {
                Some(next) => q.after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Deletes every AE admitted under `app_id` (when the policy deletes revoked AEs).
    pub async fn remove_aes_of(&self, app_id: &onem2m::AppId) {
        let Some(a) = &self.admission else { return };
        for stem in a.aes_of(app_id) {
            match self.store.get(&stem).await {
                Ok(Some(ae)) => {
                    if let Err(e) = self.remove(&ae, None).await {
                        tracing::warn!(ae = %stem, error = %e, "cannot delete the AE of a revoked App-ID");
                    }
                }
                Ok(None) => a.forget(&stem),
                Err(e) => tracing::warn!(ae = %stem, error = %e, "cannot read the AE of a revoked App-ID"),
            }
        }
    }

    pub fn config(&self) -> &CseConfig {
        &self.cfg
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Whether the CSE can serve: its CSEBase can be read from the store. Not a request: it fires
    /// no events (an operation monitor on the CSEBase is not told of health checks) and counts in
    /// no request metrics.
    pub async fn health(&self) -> Result<(), Error> {
        match self.store.get_by_srn(self.cfg.cse_name.as_str()).await.map_err(store_error)? {
            Some(_) => Ok(()),
            None => Err(Error::internal("the CSEBase is missing from the store")),
        }
    }

    pub fn tunables(&self) -> Tunables {
        self.tunables.read().clone()
    }

    /// Processes one request. Never fails: every error is a response with its code and a reason.
    ///
    /// The processing's future is boxed: it holds the state of every operation, and unboxed it
    /// would be copied with every future that awaits this one (a binding's handler, the router's
    /// layers), and a fan-out, which handles its members' requests, would contain itself.
    pub async fn handle(&self, req: Request, ctx: &Ctx) -> Response {
        let rqi = req.rqi.clone();
        let rvi = req.rvi.clone();
        let mut resp = match Box::pin(self.process(req, ctx)).await {
            Ok(r) => r,
            Err(e) => Response::error(rqi.clone(), &e),
        };
        resp.rqi = rqi;
        resp.rvi = rvi;
        resp.ot = Some(self.clock.now());
        resp
    }

    async fn process(&self, req: Request, ctx: &Ctx) -> Result<Response, Error> {
        let now = self.clock.now();
        let rv = match req.rvi.as_deref() {
            None => return Err(Error::new(Rsc::ReleaseVersionNotSupported, "X-M2M-RVI (rvi) is required")),
            Some(s) => match ReleaseVersion::parse(s) {
                Some(v) if v.is_supported() => v,
                _ => {
                    return Err(Error::new(
                        Rsc::ReleaseVersionNotSupported,
                        format!("release version {s:?} is not supported (2a, 3, 4, 5 are)"),
                    ));
                }
            },
        };
        if req.rqi.is_empty() {
            return Err(Error::bad_request("the request identifier (X-M2M-RI, rqi) is missing"));
        }
        if let Some(rqet) = req.rqet
            && rqet.resolve(now) < now
        {
            return Err(Error::new(Rsc::RequestTimeout, "the request expired before it was processed (rqet)"));
        }
        if let Some(rt) = &req.rt
            && matches!(rt.rtv, ResponseType::NonBlockingRequestSynch | ResponseType::NonBlockingRequestAsynch)
        {
            return Err(Error::new(
                Rsc::NonBlockingSynchRequestNotSupported,
                "non-blocking requests are not supported; send a blocking request",
            ));
        }
        let registering = req.op == Operation::Create && req.ty == Some(onem2m::ResourceType::Ae);
        // A refused AE registration is a decision (see `Cse::refused_ae`).
        let refuse_ae = |reason: crate::admission::policy::Reason, e: Error| {
            let from = req.from.as_deref().unwrap_or_default();
            Box::pin(self.refused_ae(types::AeRefusal::new(reason, from, types::claimed_api(req.pc.as_ref()), e), now))
        };
        let orig = match self.originator(&req, ctx) {
            Ok(o) => o,
            Err(e) if registering => return Err(refuse_ae(crate::admission::policy::Reason::BadRequest, e).await),
            Err(e) => return Err(e),
        };
        if self.admission.is_none()
            && let Some(u) = ctx.sa.as_ref().and_then(|sa| sa.unverified.as_ref())
        {
            // Nothing can verify a client certificate without admission (no App-ID has roots).
            return Err(Error::new(
                Rsc::OriginatorNotAuthenticated,
                format!("the client certificate does not verify ({}): {}", u.reason, u.message),
            ));
        }
        if let Some(a) = &self.admission {
            let enforcing = a.mode() == crate::admission::policy::Mode::Enforce && ctx.binding != Binding::Internal;
            // (An AE registration by a CSE-ID is refused, and logged, by the registration rules.)
            if enforcing && !registering && matches!(orig.kind, Originator::Cse { .. }) && ctx.sa.is_none() {
                return Err(Error::new(
                    Rsc::SecurityAssociationRequired,
                    "a CSE-ID originator needs a security association",
                ));
            }
            // With admission enforced, full access needs proof: the admin token.
            if enforcing && orig.id == self.cfg.admin && !ctx.admin_authenticated {
                let e = Error::new(
                    Rsc::OriginatorNotAuthenticated,
                    "the admin originator must present the admin token (Authorization: Bearer)",
                );
                if registering {
                    return Err(refuse_ae(crate::admission::policy::Reason::AdminToken, e).await);
                }
                return Err(e);
            }
            if !registering && ctx.binding != Binding::Internal {
                a.check(&orig.id, ctx.sa.as_ref(), ctx.binding.name(), ctx.payload_len).await?;
            }
        }
        let dl = Deadline::of(now, req.rqet, self.tunables.read().request_expiration);
        // Each operation's future is boxed on its own: this one then holds none of them, and what
        // is copied to start an operation is that operation's state only.
        match req.op {
            Operation::Create => Box::pin(self.create(&req, rv, &orig, ctx, now, dl)).await,
            // A retrieve changes nothing: all of it may be cut short.
            Operation::Retrieve => {
                let (resp, monitored) = self.within(dl, Box::pin(self.retrieve(&req, &orig, ctx, dl))).await?;
                if let Some((pending, res)) = monitored {
                    Box::pin(self.deliver_now(pending, &res)).await;
                }
                Ok(resp)
            }
            Operation::Update => Box::pin(self.update(&req, &orig, ctx, now, dl)).await,
            Operation::Delete => Box::pin(self.delete(&req, &orig, ctx, dl)).await,
            Operation::Notify => Box::pin(self.notify(&req, &orig, dl)).await,
        }
    }

    /// 4008 if the deadline has passed: called before a write is handed to the store.
    pub(crate) fn before(&self, dl: Deadline) -> Result<(), Error> {
        match dl.at() {
            Some(at) if self.clock.now() >= at => Err(Deadline::expired()),
            _ => Ok(()),
        }
    }

    /// Runs `work`, which must not write, until the deadline at most; 4008 when it passes first.
    pub(crate) async fn within<T>(
        &self,
        dl: Deadline,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(at) = dl.at() else { return work.await };
        let left = at.since(self.clock.now());
        if left.is_zero() {
            return Err(Deadline::expired());
        }
        tokio::time::timeout(left, work).await.unwrap_or_else(|_| Err(Deadline::expired()))
    }

    /// Classifies and normalises `From`. Absent is allowed only for AE CREATE (checked there).
    fn originator(&self, req: &Request, ctx: &Ctx) -> Result<Orig, Error> {
        let raw = req.from.as_deref().unwrap_or("");
        let kind = Originator::parse(raw).map_err(|e| Error::bad_request(format!("originator: {e}")))?;
        let id = match &kind {
            Originator::Ae(ae) => self.local_ae_stem(ae).unwrap_or_else(|| raw.to_owned()),
            Originator::Cse { sp, cse } if self.is_own_sp(sp.as_ref()) && cse == &self.cfg.cse_id => {
                self.cfg.cse_id.to_string()
            }
            _ => raw.to_owned(),
        };
        if kind == Originator::Empty && !(req.op == Operation::Create && req.ty == Some(onem2m::ResourceType::Ae)) {
            return Err(Error::bad_request("the originator (X-M2M-Origin, From) is missing"));
        }
        Ok(Orig { id, kind, remote: ctx.remote_addr, authenticated: ctx.authenticated() })
    }

    fn is_own_sp(&self, sp: Option<&onem2m::SpId>) -> bool {
        sp.is_none_or(|sp| sp == &self.cfg.sp_id)
    }

    /// The stem of an AE-ID that belongs to this CSE (its own C-stems, and any S-stem of its SP).
    pub(crate) fn local_ae_stem(&self, ae: &onem2m::AeId) -> Option<String> {
        use onem2m::AeId;
        match ae {
            AeId::Stem(s) => Some(s.to_string()),
            AeId::SpRelative { cse, stem } => {
                (cse.is_none() || cse.as_ref() == Some(&self.cfg.cse_id)).then(|| stem.to_string())
            }
            AeId::Absolute { sp, cse, stem } => (sp == &self.cfg.sp_id
                && (cse.is_none() || cse.as_ref() == Some(&self.cfg.cse_id)))
            .then(|| stem.to_string()),
        }
    }

    /// The SP-relative and absolute AE-IDs of an AE of this CSE with `stem`.
    pub(crate) fn full_ae_ids(&self, stem: &str) -> Vec<String> {
        match onem2m::AeIdStem::parse(stem) {
            Ok(s) => vec![
                onem2m::AeId::sp_relative(&s, &self.cfg.cse_id),
                onem2m::AeId::absolute(&s, &self.cfg.sp_id, &self.cfg.cse_id),
            ],
            Err(_) => Vec::new(),
        }
    }

    /// True for the admin originator and for this CSE itself: full access.
    pub(crate) fn is_privileged(&self, orig: &str) -> bool {
        orig == self.cfg.admin || orig == self.cfg.cse_id.as_str() || orig == self.cfg.cse_ri()
    }

    /// The SP-relative unstructured ID of a resource, as notifications carry it (`sur`).
    pub(crate) fn sp_relative(&self, ri: &str) -> String {
        format!("{}/{ri}", self.cfg.cse_id)
    }

    async fn notify(&self, req: &Request, orig: &Orig, dl: Deadline) -> Result<Response, Error> {
        // A NOTIFY addressed to this CSE or to one of its AEs. Notifications for AEs are forwarded
        // to their point of access; the CSE itself accepts and ignores them.
        let target = self.resolve(&req.to).await?.into_resource(Operation::Notify)?;
        match target.ty {
            onem2m::ResourceType::Ae => {
                self.check_access(&target, orig, Operation::Notify.acop_bit()).await?;
                let urls: Vec<String> = target.str_list("poa").into_iter().map(str::to_owned).collect();
                if urls.is_empty() {
                    return Err(Error::new(Rsc::TargetNotReachable, "the AE has no point of access"));
                }
                let t = NotifyTarget { key: target.ri().to_owned(), urls };
                let pc = req.pc.clone().unwrap_or(Value::Null);
                let rsc = self.within(dl, self.notifier.send_now(&t, pc, self.cfg.verification_timeout)).await?;
                Ok(Response::new(rsc, &req.rqi))
            }
            onem2m::ResourceType::CseBase => Ok(Response::new(Rsc::Ok, &req.rqi)),
            _ => Err(Error::new(Rsc::OperationNotAllowed, "NOTIFY is accepted by the CSE and its AEs only")),
        }
    }
}

/// Maps a store failure to the response a client gets.
pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::DuplicateRi(ri) => Error::new(Rsc::Conflict, format!("resource ID {ri} exists already")),
        StoreError::DuplicateName(rn) => {
            Error::new(Rsc::Conflict, format!("a resource named '{rn}' exists already under this parent"))
        }
        StoreError::NotFound(ri) => Error::not_found(format!("resource {ri} not found")),
        StoreError::Backend(msg) => {
            tracing::error!(error = %msg, "store failure");
            Error::internal("storage failure; the request was not applied")
        }
    }
}

/// A resource found by a target, or a virtual resource of one.
pub(crate) enum Target {
    /// A resource; shared with the parent cache when it came from there (a container receiving
    /// instances is not copied for each).
    Resource(Arc<Resource>),
    /// `la` or `ol` of a container.
    Latest(Arc<Resource>),
    Oldest(Arc<Resource>),
    /// `fopt` of a group, with the rest of the path to append to each member.
    FanOut {
        group: Resource,
        rest: String,
    },
}

impl Target {
    /// The resource itself; virtual resources are not allowed for `op`.
    pub(crate) fn into_resource(self, op: Operation) -> Result<Resource, Error> {
        match self {
            Target::Resource(r) => Ok(Arc::unwrap_or_clone(r)),
            _ => Err(Error::new(Rsc::OperationNotAllowed, format!("{op:?} is not allowed on a virtual resource"))),
        }
    }
}
