//! The measured request of each scenario, and how its answer is judged.
//!
//! A [`Workload`] is built once, after the scenario's setup; workers then call
//! [`Workload::request`] and [`Workload::judge`] for every request. Everything constant is
//! pre-built (URI, header map, body parts); what changes per request (`X-M2M-RI`, a unique
//! resource name, a random App-ID) is written into the worker's reusable scratch buffer.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::client::Head;
use super::stats::ErrorKey;

pub(crate) const X_M2M_ORIGIN: HeaderName = HeaderName::from_static("x-m2m-origin");
pub(crate) const X_M2M_RI: HeaderName = HeaderName::from_static("x-m2m-ri");
pub(crate) const X_M2M_RVI: HeaderName = HeaderName::from_static("x-m2m-rvi");

/// The App-IDs the registry preload creates are `{REGISTRY_APP_ID_PREFIX}{i}`.
pub(crate) const REGISTRY_APP_ID_PREFIX: &str = "Rbench.org.warden.a";

/// The oneM2M headers of a request: `Host`, `X-M2M-Origin` (omitted when `origin` is `None`),
/// `X-M2M-RVI`, `Accept: application/json`, and `Content-Type: application/json;ty=N` for a CREATE.
pub(crate) fn m2m_headers(
    host: &HeaderValue,
    origin: Option<&str>,
    rvi: &str,
    ty: Option<u16>,
) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::with_capacity(6);
    h.insert(HOST, host.clone());
    if let Some(origin) = origin {
        h.insert(X_M2M_ORIGIN, HeaderValue::from_str(origin)?);
    }
    h.insert(X_M2M_RVI, HeaderValue::from_str(rvi)?);
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(ty) = ty {
        h.insert(CONTENT_TYPE, HeaderValue::from_str(&format!("application/json;ty={ty}"))?);
    }
    Ok(h)
}

/// A request from a header map, a path, a body.
pub(crate) fn build_request(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

/// A small, fast, seedable pseudo-random generator (SplitMix64), one per worker.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from the operating system, mixed with `stream` so workers differ.
    pub(crate) fn from_os(stream: u64) -> Self {
        let seed = getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15);
        Self::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-64 · n).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What the originator of each request is.
#[derive(Debug, Clone)]
enum OriginRule {
    /// Fixed, already in the header map (or absent from it).
    Fixed,
    /// A new AE-ID-Stem per request: the prefix followed by the request number.
    Stem(String),
}

#[derive(Debug, Clone)]
enum BodyRule {
    Empty,
    Fixed(Bytes),
    /// `head` + request number + `tail`: an AE with a unique resource name.
    Numbered {
        head: String,
        tail: String,
    },
    /// `head` + request number + `mid` + ((`start` + request number) mod `count`) + `tail` (the
    /// two numbers swapped when `api_first`): an AE with a
    /// unique resource name whose App-ID is one of `count` preloaded ones, each new App-ID a
    /// miss of the CSE's profile cache while the request number is below `count`.
    NumberedApi {
        head: String,
        mid: String,
        tail: String,
        count: u64,
        start: u64,
        /// The App-ID's number comes before the name's in the JSON text.
        api_first: bool,
    },
    /// A registry lookup of a random preloaded App-ID among `count`.
    Lookup {
        count: u64,
    },
}

/// The answer that counts as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Rsc(u16),
    Status(u16),
}

/// The content check made on top of the expected code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    /// The first answer of each worker is an `m2m:uril` with exactly this many entries.
    FirstUril(usize),
    /// The first answer of each worker holds this resource, e.g. `m2m:cin`.
    FirstResource(&'static str),
    /// Every answer is `registered: true` for the App-ID asked about.
    Lookup,
}

/// The measured request of a scenario and the rule for judging its answer.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// `X-M2M-RI` is this prefix followed by the request number (absent for the registry).
    ri_prefix: Option<String>,
    origin: OriginRule,
    body: BodyRule,
    expect: Expect,
    check: Check,
}

/// How the AE of `ae-register` (and the setup AE) names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AeOrigin {
    /// `X-M2M-Origin: C`: the CSE assigns a C-stem.
    C,
    /// `X-M2M-Origin: S`: the CSE assigns an S-stem.
    S,
    /// A new C-stem chosen by the client for each AE (`Cb<run>x<n>`).
    CStem,
    /// A new S-stem chosen by the client for each AE (`Sb<run>x<n>`).
    SStem,
    /// No `X-M2M-Origin` at all: the CSE chooses.
    None,
}

impl AeOrigin {
    /// The originator when it is the same for every AE.
    fn fixed(self) -> Option<&'static str> {
        match self {
            AeOrigin::C => Some("C"),
            AeOrigin::S => Some("S"),
            AeOrigin::CStem | AeOrigin::SStem | AeOrigin::None => None,
        }
    }

    /// The beginning of the stems chosen by the client, followed by the AE's number.
    fn stem_prefix(self, run: &str) -> Option<String> {
        match self {
            AeOrigin::CStem => Some(format!("Cb{run}x")),
            AeOrigin::SStem => Some(format!("Sb{run}x")),
            AeOrigin::C | AeOrigin::S | AeOrigin::None => None,
        }
    }

    /// The originator of AE number `n` of run `run` (`None`: no `X-M2M-Origin`).
    pub(crate) fn originator(self, run: &str, n: u64) -> Option<String> {
        match self.stem_prefix(run) {
            Some(prefix) => Some(format!("{prefix}{n}")),
            None => self.fixed().map(str::to_owned),
        }
    }
}

/// The App-ID of the AEs that `ae-register` registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AeApi {
    /// The same App-ID for every AE (after the first, a warm profile cache).
    Fixed(String),
    /// AE number `n` has preloaded App-ID number `(start + n) % count` (a cold cache for each
    /// new one).
    Preloaded { count: u64, start: u64 },
}

/// The JSON of an AE CREATE: `rn`, `api`, `rr: false`, `srv: ["3","4"]`.
pub(crate) fn ae_body(rn: &str, api: &str) -> String {
    serde_json::json!({ "m2m:ae": { "rn": rn, "api": api, "rr": false, "srv": ["3", "4"] } }).to_string()
}

/// The JSON of a contentInstance CREATE with `payload` bytes of text content.
pub(crate) fn cin_body(payload: usize) -> String {
    let con: String = "0123456789abcdef".chars().cycle().take(payload).collect();
    serde_json::json!({ "m2m:cin": { "cnf": "text/plain:0", "con": con } }).to_string()
}

/// What every oneM2M workload shares: the `Host` header, the release version, the run's name.
#[derive(Debug, Clone)]
pub(crate) struct M2m {
    pub(crate) host: HeaderValue,
    pub(crate) rvi: String,
    /// A short random name of this run, for unique resource names and request IDs.
    pub(crate) run: String,
}

impl M2m {
    fn workload(
        &self,
        method: Method,
        path: &str,
        origin: Option<&str>,
        ty: Option<u16>,
        expect: u16,
    ) -> anyhow::Result<Workload> {
        Ok(Workload {
            method,
            uri: Uri::try_from(path)?,
            headers: m2m_headers(&self.host, origin, &self.rvi, ty)?,
            ri_prefix: Some(format!("{}-", self.run)),
            origin: OriginRule::Fixed,
            body: BodyRule::Empty,
            expect: Expect::Rsc(expect),
            check: Check::None,
        })
    }

    /// `ceiling`: a RETRIEVE of `path`, answered `2000`.
    pub(crate) fn ceiling(&self, path: &str, origin: &str) -> anyhow::Result<Workload> {
        self.workload(Method::GET, path, Some(origin), None, 2000)
    }

    /// `ae-register`: CREATE of a new AE under the CSEBase at `cse_path`, answered `2001`.
    pub(crate) fn ae_register(&self, cse_path: &str, api: &AeApi, origin: AeOrigin) -> anyhow::Result<Workload> {
        let mut w = self.workload(Method::POST, cse_path, origin.fixed(), Some(2), 2001)?;
        if let Some(prefix) = origin.stem_prefix(&self.run) {
            w.origin = OriginRule::Stem(prefix);
        }
        // Split the JSON of an AE named "@" around the name (and around the App-ID's number,
        // "#"), so that each request only writes the numbers between the parts.
        let rn = format!("b{}-@", self.run);
        w.body = match api {
            AeApi::Fixed(api) => {
                let template = ae_body(&rn, api);
                let (head, tail) = template.split_once('@').expect("the marker is in the template");
                BodyRule::Numbered { head: head.to_owned(), tail: tail.to_owned() }
            }
            AeApi::Preloaded { count, start } => {
                let template = ae_body(&rn, &format!("{REGISTRY_APP_ID_PREFIX}#"));
                // The members may come in any order; the two markers split the text in three.
                let (name, app) = (template.find('@'), template.find('#'));
                let (Some(name), Some(app)) = (name, app) else { unreachable!("both markers are in the template") };
                let (first, second) = (name.min(app), name.max(app));
                BodyRule::NumberedApi {
                    head: template[..first].to_owned(),
                    mid: template[first + 1..second].to_owned(),
                    tail: template[second + 1..].to_owned(),
                    count: (*count).max(1),
                    start: *start,
                    api_first: app < name,
                }
            }
        };
        Ok(w)
    }

    /// `cin-create`: CREATE of a contentInstance in the container at `cnt_path`, as `aei`.
    pub(crate) fn cin_create(&self, cnt_path: &str, aei: &str, payload: usize) -> anyhow::Result<Workload> {
        let mut w = self.workload(Method::POST, cnt_path, Some(aei), Some(4), 2001)?;
        w.body = BodyRule::Fixed(Bytes::from(cin_body(payload)));
        Ok(w)
    }

    /// `cin-retrieve`: RETRIEVE of `{cnt_path}/la`, which must hold an `m2m:cin`.
    pub(crate) fn cin_retrieve(&self, cnt_path: &str, origin: &str) -> anyhow::Result<Workload> {
        let mut w = self.workload(Method::GET, &format!("{cnt_path}/la"), Some(origin), None, 2000)?;
        w.check = Check::FirstResource("m2m:cin");
        Ok(w)
    }

    /// `discovery`: `GET {parent_path}?fu=1&ty={ty}`, whose `m2m:uril` must list `children`.
    pub(crate) fn discovery(
        &self,
        parent_path: &str,
        ty: u16,
        children: usize,
        origin: &str,
    ) -> anyhow::Result<Workload> {
        let path = format!("{parent_path}?fu=1&ty={ty}");
        let mut w = self.workload(Method::GET, &path, Some(origin), None, 2000)?;
        w.check = Check::FirstUril(children);
        Ok(w)
    }
}

/// `registry-lookup`: `POST {lookup_path}` of a random one of the `count` preloaded App-IDs,
/// answered `200` with `registered: true` for that App-ID.
pub(crate) fn registry_lookup(
    host: &HeaderValue,
    lookup_path: &str,
    token: &str,
    count: u64,
) -> anyhow::Result<Workload> {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(HOST, host.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    Ok(Workload {
        method: Method::POST,
        uri: Uri::try_from(lookup_path)?,
        headers,
        ri_prefix: None,
        origin: OriginRule::Fixed,
        body: BodyRule::Lookup { count: count.max(1) },
        expect: Expect::Status(200),
        check: Check::Lookup,
    })
}

impl Workload {
    /// Request number `n` of the run. The returned tag goes back to [`Workload::judge`].
    pub(crate) fn request(&self, n: u64, rng: &mut Rng, scratch: &mut BytesMut) -> (Request<Full<Bytes>>, u64) {
        let mut headers = self.headers.clone();
        if let Some(prefix) = &self.ri_prefix {
            headers.insert(X_M2M_RI, header_from(scratch, |b| write_numbered(b, prefix, n)));
        }
        if let OriginRule::Stem(prefix) = &self.origin {
            headers.insert(X_M2M_ORIGIN, header_from(scratch, |b| write_numbered(b, prefix, n)));
        }
        let mut tag = 0;
        let body = match &self.body {
            BodyRule::Empty => Bytes::new(),
            BodyRule::Fixed(bytes) => bytes.clone(),
            BodyRule::Numbered { head, tail } => {
                scratch.put_slice(head.as_bytes());
                let _ = write!(scratch, "{n}");
                scratch.put_slice(tail.as_bytes());
                scratch.split().freeze()
            }
            BodyRule::NumberedApi { head, mid, tail, count, start, api_first } => {
                let app = start.wrapping_add(n) % count;
                let (a, b) = if *api_first { (app, n) } else { (n, app) };
                scratch.put_slice(head.as_bytes());
                let _ = write!(scratch, "{a}");
                scratch.put_slice(mid.as_bytes());
                let _ = write!(scratch, "{b}");
                scratch.put_slice(tail.as_bytes());
                scratch.split().freeze()
            }
            BodyRule::Lookup { count } => {
                tag = rng.below(*count);
                let _ = write!(scratch, r#"{{"appId":"{REGISTRY_APP_ID_PREFIX}{tag}","aeId":"Cbench{tag}"}}"#);
                scratch.split().freeze()
            }
        };
        (build_request(self.method.clone(), self.uri.clone(), headers, body), tag)
    }

    /// `METHOD path`, for error reports.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }

    /// Whether an answer is a success. `first` is true for a worker's first measured answer:
    /// checks of a large body (discovery) are made on those only, to keep the client cheap.
    pub(crate) fn judge(&self, tag: u64, head: Head, body: &[u8], first: bool) -> Result<(), ErrorKey> {
        match self.expect {
            Expect::Rsc(want) => match head.rsc {
                Some(rsc) if rsc == want => {}
                Some(rsc) => return Err(ErrorKey::Rsc(rsc)),
                None if (200..300).contains(&head.status) => return Err(ErrorKey::Check("answer without X-M2M-RSC")),
                None => return Err(ErrorKey::Status(head.status)),
            },
            Expect::Status(want) if head.status != want => return Err(ErrorKey::Status(head.status)),
            Expect::Status(_) => {}
        }
        match self.check {
            Check::None => Ok(()),
            Check::FirstUril(n) if first => check_uril(body, n),
            Check::FirstResource(name) if first => check_resource(body, name),
            Check::FirstUril(_) | Check::FirstResource(_) => Ok(()),
            Check::Lookup => check_lookup(body, tag),
        }
    }
}

fn write_numbered(b: &mut BytesMut, prefix: &str, n: u64) {
    b.put_slice(prefix.as_bytes());
    let _ = write!(b, "{n}");
}

/// A header value written into the scratch buffer (no allocation once the buffer has grown).
fn header_from(scratch: &mut BytesMut, write: impl FnOnce(&mut BytesMut)) -> HeaderValue {
    write(scratch);
    let bytes = scratch.split().freeze();
    // The prefixes are validated header values and digits are visible ASCII.
    HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn check_uril(body: &[u8], want: usize) -> Result<(), ErrorKey> {
    #[derive(Deserialize)]
    struct Uril {
        #[serde(rename = "m2m:uril")]
        uril: Vec<IgnoredAny>,
    }
    let got: Uril = serde_json::from_slice(body).map_err(|_| ErrorKey::Check("no m2m:uril in the answer"))?;
    if got.uril.len() == want { Ok(()) } else { Err(ErrorKey::Check("m2m:uril does not list every child")) }
}

fn check_resource(body: &[u8], name: &'static str) -> Result<(), ErrorKey> {
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| ErrorKey::Check("the answer is not a JSON object"))?;
    if v.get(name).is_some_and(|r| r.is_object()) {
        Ok(())
    } else {
        Err(ErrorKey::Check("the answer does not hold the expected resource"))
    }
}

fn check_lookup(body: &[u8], index: u64) -> Result<(), ErrorKey> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(rename = "appId", borrow)]
        app_id: Cow<'a, str>,
        registered: bool,
    }
    let a: Answer<'_> =
        serde_json::from_slice(body).map_err(|_| ErrorKey::Check("the lookup answer is not the expected JSON"))?;
    let asked = a.app_id.strip_prefix(REGISTRY_APP_ID_PREFIX).and_then(|i| i.parse::<u64>().ok());
    if asked != Some(index) {
        Err(ErrorKey::Check("the lookup answered for another App-ID"))
    } else if !a.registered {
        Err(ErrorKey::Check("registered: false"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn m2m() -> M2m {
        M2m { host: HeaderValue::from_static("127.0.0.1:8080"), rvi: "4".into(), run: "r1".into() }
    }

    fn build(w: &Workload, n: u64) -> (Request<Full<Bytes>>, u64, Bytes) {
        let mut rng = Rng::new(7);
        let mut scratch = BytesMut::with_capacity(256);
        let (req, tag) = w.request(n, &mut rng, &mut scratch);
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(req.body().clone()))
            .unwrap()
            .unwrap()
            .to_bytes();
        (req, tag, body)
    }

    fn header<'a>(req: &'a Request<Full<Bytes>>, name: &str) -> Option<&'a str> {
        req.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn fixed() -> AeApi {
        AeApi::Fixed("Nbench.app".into())
    }

    fn head(status: u16, rsc: Option<u16>) -> Head {
        Head { status, rsc }
    }

    #[test]
    fn ceiling_is_a_plain_onem2m_retrieve() {
        let w = m2m().ceiling("/cse-in", "CAdmin").unwrap();
        let (req, _, body) = build(&w, 5);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "/cse-in");
        assert_eq!(header(&req, "host"), Some("127.0.0.1:8080"));
        assert_eq!(header(&req, "x-m2m-origin"), Some("CAdmin"));
        assert_eq!(header(&req, "x-m2m-ri"), Some("r1-5"));
        assert_eq!(header(&req, "x-m2m-rvi"), Some("4"));
        assert_eq!(header(&req, "accept"), Some("application/json"));
        assert_eq!(header(&req, "content-type"), None);
        assert!(body.is_empty());
        assert_eq!(w.describe(), "GET /cse-in");
    }

    #[test]
    fn ae_register_sends_a_unique_ae_per_request() {
        let w = m2m().ae_register("/cse-in", &fixed(), AeOrigin::C).unwrap();
        let (req, _, body) = build(&w, 42);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/cse-in");
        assert_eq!(header(&req, "content-type"), Some("application/json;ty=2"));
        assert_eq!(header(&req, "x-m2m-origin"), Some("C"));
        assert_eq!(header(&req, "x-m2m-ri"), Some("r1-42"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"m2m:ae": {"rn": "br1-42", "api": "Nbench.app", "rr": false, "srv": ["3", "4"]}})
        );
        let (_, _, other) = build(&w, 43);
        assert_ne!(body, other);
    }

    #[test]
    fn ae_register_with_preloaded_app_ids_uses_a_new_one_per_ae() {
        let w = m2m().ae_register("/cse-in", &AeApi::Preloaded { count: 1000, start: 0 }, AeOrigin::C).unwrap();
        let app = |n: u64| {
            let (_, _, body) = build(&w, n);
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["m2m:ae"]["rn"], format!("br1-{n}"));
            let api = v["m2m:ae"]["api"].as_str().unwrap().to_owned();
            assert!(onem2m::AppId::parse(&api).unwrap().is_registered());
            api
        };
        assert_eq!(app(0), format!("{REGISTRY_APP_ID_PREFIX}0"));
        assert_eq!(app(999), format!("{REGISTRY_APP_ID_PREFIX}999"));
        assert_eq!(app(1000), format!("{REGISTRY_APP_ID_PREFIX}0"), "wraps around after the preload");
        assert_eq!(app(1234), format!("{REGISTRY_APP_ID_PREFIX}234"));
        let from = m2m().ae_register("/cse-in", &AeApi::Preloaded { count: 1000, start: 990 }, AeOrigin::C).unwrap();
        let (_, _, body) = build(&from, 15);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["m2m:ae"]["api"], format!("{REGISTRY_APP_ID_PREFIX}5"), "990 + 15 wraps to 5");
    }

    #[test]
    fn ae_register_origins() {
        let m = m2m();
        let s = m.ae_register("/cse-in", &fixed(), AeOrigin::S).unwrap();
        assert_eq!(header(&build(&s, 1).0, "x-m2m-origin"), Some("S"));
        let none = m.ae_register("/cse-in", &fixed(), AeOrigin::None).unwrap();
        assert_eq!(header(&build(&none, 1).0, "x-m2m-origin"), None);
        let cs = m.ae_register("/cse-in", &fixed(), AeOrigin::CStem).unwrap();
        assert_eq!(header(&build(&cs, 17).0, "x-m2m-origin"), Some("Cbr1x17"));
        assert_eq!(header(&build(&cs, 0).0, "x-m2m-origin"), Some("Cbr1x0"));
        let ss = m.ae_register("/cse-in", &fixed(), AeOrigin::SStem).unwrap();
        assert_eq!(header(&build(&ss, 300).0, "x-m2m-origin"), Some("Sbr1x300"));
        for (o, want) in [(AeOrigin::CStem, "Cbr1x9"), (AeOrigin::SStem, "Sbr1x9")] {
            let stem = o.originator("r1", 9).unwrap();
            assert_eq!(stem, want);
            onem2m::AeIdStem::parse(&stem).unwrap();
        }
    }

    #[test]
    fn cin_create_posts_a_fixed_instance_as_the_ae() {
        let w = m2m().cin_create("/cse-in/bAE/cnt", "Cae123", 8).unwrap();
        let (req, _, body) = build(&w, 0);
        assert_eq!(req.uri(), "/cse-in/bAE/cnt");
        assert_eq!(header(&req, "x-m2m-origin"), Some("Cae123"));
        assert_eq!(header(&req, "content-type"), Some("application/json;ty=4"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"m2m:cin": {"cnf": "text/plain:0", "con": "01234567"}}));
        assert_eq!(w.judge(0, head(201, Some(2001)), b"{}", true), Ok(()));
        assert_eq!(w.judge(0, head(403, Some(4103)), b"{}", true), Err(ErrorKey::Rsc(4103)));
    }

    #[test]
    fn cin_retrieve_reads_latest() {
        let w = m2m().cin_retrieve("/cse-in/bAE/cnt", "CAdmin").unwrap();
        let (req, _, _) = build(&w, 0);
        assert_eq!((req.method(), req.uri().path()), (&Method::GET, "/cse-in/bAE/cnt/la"));
        let cin = br#"{"m2m:cin":{"con":"x"}}"#;
        assert_eq!(w.judge(0, head(200, Some(2000)), cin, true), Ok(()));
        assert!(matches!(w.judge(0, head(200, Some(2000)), br#"{"m2m:cnt":{}}"#, true), Err(ErrorKey::Check(_))));
        // Only a worker's first answer is inspected.
        assert_eq!(w.judge(0, head(200, Some(2000)), b"garbage", false), Ok(()));
        assert_eq!(w.judge(0, head(404, Some(4004)), cin, true), Err(ErrorKey::Rsc(4004)));
    }

    #[test]
    fn discovery_checks_the_uri_count() {
        let w = m2m().discovery("/cse-in/bAE/parent", 4, 3, "CAdmin").unwrap();
        let (req, _, _) = build(&w, 0);
        assert_eq!(req.uri(), "/cse-in/bAE/parent?fu=1&ty=4");
        let ok = br#"{"m2m:uril":["cse-in/bAE/parent/a","cse-in/bAE/parent/b","cse-in/bAE/parent/c"]}"#;
        let short = br#"{"m2m:uril":["cse-in/bAE/parent/a"]}"#;
        assert_eq!(w.judge(0, head(200, Some(2000)), ok, true), Ok(()));
        assert_eq!(
            w.judge(0, head(200, Some(2000)), short, true),
            Err(ErrorKey::Check("m2m:uril does not list every child"))
        );
        assert_eq!(w.judge(0, head(200, Some(2000)), short, false), Ok(()));
        assert_eq!(
            w.judge(0, head(200, Some(2000)), br#"{"m2m:cnt":{}}"#, true),
            Err(ErrorKey::Check("no m2m:uril in the answer"))
        );
    }

    #[test]
    fn rsc_counting_falls_back_to_the_http_status() {
        let w = m2m().ceiling("/cse-in", "CAdmin").unwrap();
        assert_eq!(w.judge(0, head(200, Some(2000)), b"", false), Ok(()));
        assert_eq!(w.judge(0, head(409, Some(4105)), b"", false), Err(ErrorKey::Rsc(4105)));
        assert_eq!(w.judge(0, head(502, None), b"", false), Err(ErrorKey::Status(502)));
        assert_eq!(w.judge(0, head(200, None), b"", false), Err(ErrorKey::Check("answer without X-M2M-RSC")));
        // A right HTTP status with a wrong RSC is still the RSC's error.
        assert_eq!(w.judge(0, head(200, Some(2001)), b"", false), Err(ErrorKey::Rsc(2001)));
    }

    #[test]
    fn registry_lookup_asks_for_a_random_preloaded_app_id() {
        let host = HeaderValue::from_static("127.0.0.1:7070");
        let w = registry_lookup(&host, "/v1/lookup", "tok", 1000).unwrap();
        let (req, tag, body) = build(&w, 0);
        assert!(tag < 1000);
        assert_eq!((req.method(), req.uri().path()), (&Method::POST, "/v1/lookup"));
        assert_eq!(header(&req, "authorization"), Some("Bearer tok"));
        assert!(req.headers().get("authorization").unwrap().is_sensitive());
        assert_eq!(header(&req, "content-type"), Some("application/json"));
        assert_eq!(header(&req, "x-m2m-ri"), None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let app = format!("{REGISTRY_APP_ID_PREFIX}{tag}");
        assert_eq!(v, serde_json::json!({"appId": app, "aeId": format!("Cbench{tag}")}));
        onem2m::AppId::parse(&app).unwrap();

        let good = format!(
            r#"{{"appId":"{app}","aeId":"Cbench{tag}","registered":true,"deviceStatus":"allowed","record":{{}}}}"#
        );
        assert_eq!(w.judge(tag, head(200, None), good.as_bytes(), false), Ok(()));
        let unknown = format!(r#"{{"appId":"{app}","registered":false}}"#);
        assert_eq!(w.judge(tag, head(200, None), unknown.as_bytes(), false), Err(ErrorKey::Check("registered: false")));
        assert_eq!(
            w.judge(tag + 1, head(200, None), good.as_bytes(), false),
            Err(ErrorKey::Check("the lookup answered for another App-ID"))
        );
        assert_eq!(w.judge(tag, head(401, None), b"{}", false), Err(ErrorKey::Status(401)));
        assert!(matches!(w.judge(tag, head(200, None), b"<html>", false), Err(ErrorKey::Check(_))));
    }

    #[test]
    fn lookups_spread_over_all_app_ids() {
        let host = HeaderValue::from_static("h");
        let w = registry_lookup(&host, "/v1/lookup", "t", 10).unwrap();
        let mut rng = Rng::new(1);
        let mut scratch = BytesMut::new();
        let mut seen = [0u32; 10];
        for n in 0..10_000 {
            let (_, tag) = w.request(n, &mut rng, &mut scratch);
            seen[tag as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut r = Rng::new(99);
        assert!((0..1000).all(|_| r.below(3) < 3));
        assert_eq!(r.below(1), 0);
    }
}
