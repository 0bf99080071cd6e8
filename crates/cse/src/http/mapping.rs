//! The HTTP binding's mapping (TS-0009 §6): an HTTP request to a request primitive, and a response
//! primitive to an HTTP response. Pure functions, no I/O and no clock (callers pass `now`).
//!
//! # Headers (TS-0009 §6.4)
//! | Header | Parameter | Request → primitive | Primitive → response |
//! |---|---|---|---|
//! | `X-M2M-Origin` | From | mapped | mapped when the response has a From |
//! | `X-M2M-RI` | rqi | mapped | always (echoed, also on errors) |
//! | `X-M2M-RVI` | rvi | mapped | always when the request had one (echoed) |
//! | `X-M2M-RSC` | rsc | — | always |
//! | `X-M2M-OT` | ot | mapped | always (the CSE's time of the answer) |
//! | `X-M2M-RET` | rqet | mapped; the core answers 4008 when it has passed | — |
//! | `X-M2M-RST` | rset | mapped; used by [`schedule`] | mapped when the response has one |
//! | `X-M2M-OET` | oet | mapped; used by [`schedule`] | — |
//! | `X-M2M-EC` | ec | mapped; accepted and ignored (see below) | mapped when the response has one |
//! | `X-M2M-RTU` | rt.nu | mapped (`&`-separated) | — |
//! | `X-M2M-GID` | gid | mapped; accepted and ignored (see below) | — |
//! | `X-M2M-VSI` | vsi | mapped | echoed when the request had one |
//! | `X-M2M-CTS`, `X-M2M-CTO` | cnst, cnot | — (response parameters) | mapped when present |
//! | `X-M2M-ATI` | ati | — (a response parameter) | never: Warden assigns no tokens |
//! | `X-M2M-AS` | aus | not mapped: accepted and ignored (see below) | — |
//! | `X-M2M-ASRI` | asri | — (a response parameter) | never: Warden asks for no signatures |
//!
//! Accepted and ignored, and why:
//! - `ec` (event category) steers the communication management of a transit CSE (CMDH, TS-0001
//!   §9.6.20); Warden forwards nothing and has no CMDH policies, so every category is handled alike.
//! - `gid` lets a member's host detect a group request that reaches it twice; Warden fans out only
//!   to its own resources and never forwards, so a group request cannot come back to it.
//! - `X-M2M-AS` carries authorization signatures for dynamic authorization (TS-0003); Warden
//!   authorizes by access control policies and the security association only, so a signature
//!   grants nothing and its absence takes nothing away.
//!
//! `oet` and `rset` are used by [`schedule`]: an operation is not executed before its `oet`, and a
//! result whose `rset` has passed is not produced (4008); a blocking request's result goes back in
//! the same exchange, so there is nothing to keep beyond that.
//!
//! # Serialisations (TS-0009 §6.4.2, §6.4.3)
//! The request's body is read as its `Content-Type` says: `application/json`, `application/cbor`,
//! or a oneM2M type `application/vnd.onem2m-<x>+json` / `+cbor` (TS-0004 §6.7). The response's is
//! chosen by [`negotiate`]: without `Accept`, the request's own serialisation (JSON when it had no
//! body); with `Accept`, the acceptable type with the highest `q` (RFC 9110 §12.5.1: the most
//! specific range that matches a type gives its `q`; `q=0` excludes). An `Accept` that admits none
//! of JSON, CBOR and their `application/vnd.onem2m-res+…` forms is answered 5207 NOT_ACCEPTABLE
//! (HTTP 406, per TS-0009 Table 6.3.2-1), with the reason in the request's serialisation.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LOCATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use onem2m::attrs::is_known_attribute;
use onem2m::{
    AbsRelTime, AttributeFilter, DesiredIdResultType, Error, FilterCriteria, FilterOperation, FilterUsage, Operation,
    Request, ResourceType, Response, ResponseType, ResponseTypeInfo, ResultContent, Rsc, Serialization, Timestamp,
};
use serde_json::Value;

pub(crate) const X_M2M_ORIGIN: HeaderName = HeaderName::from_static("x-m2m-origin");
pub(crate) const X_M2M_RI: HeaderName = HeaderName::from_static("x-m2m-ri");
pub(crate) const X_M2M_RVI: HeaderName = HeaderName::from_static("x-m2m-rvi");
pub(crate) const X_M2M_RSC: HeaderName = HeaderName::from_static("x-m2m-rsc");
const X_M2M_RET: HeaderName = HeaderName::from_static("x-m2m-ret");
const X_M2M_RST: HeaderName = HeaderName::from_static("x-m2m-rst");
const X_M2M_OET: HeaderName = HeaderName::from_static("x-m2m-oet");
const X_M2M_OT: HeaderName = HeaderName::from_static("x-m2m-ot");
const X_M2M_EC: HeaderName = HeaderName::from_static("x-m2m-ec");
const X_M2M_RTU: HeaderName = HeaderName::from_static("x-m2m-rtu");
const X_M2M_GID: HeaderName = HeaderName::from_static("x-m2m-gid");
pub(crate) const X_M2M_VSI: HeaderName = HeaderName::from_static("x-m2m-vsi");
const X_M2M_CTS: HeaderName = HeaderName::from_static("x-m2m-cts");
const X_M2M_CTO: HeaderName = HeaderName::from_static("x-m2m-cto");

/// The media type of a response body: its serialisation, and the type named in `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) ser: Serialization,
    pub(crate) media_type: &'static str,
}

impl Format {
    pub(crate) const JSON: Format = Format { ser: Serialization::Json, media_type: "application/json" };

    /// The plain media type of a serialisation (`application/json`, `application/cbor`).
    pub(crate) fn plain(ser: Serialization) -> Self {
        Self { ser, media_type: ser.media_type() }
    }
}

impl Default for Format {
    fn default() -> Self {
        Self::JSON
    }
}

/// What a response may be sent as, in the order of preference when `Accept` does not decide.
const OFFERED: [Format; 4] = [
    Format::JSON,
    Format { ser: Serialization::Cbor, media_type: "application/cbor" },
    Format { ser: Serialization::Json, media_type: "application/vnd.onem2m-res+json" },
    Format { ser: Serialization::Cbor, media_type: "application/vnd.onem2m-res+cbor" },
];

/// The `q` of a media range's parameters: 1 when absent, `None` when malformed.
fn quality(params: &str) -> Option<u16> {
    for p in params.split(';') {
        let Some((k, v)) = p.split_once('=') else { continue };
        if !k.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        // RFC 9110 §12.4.2: 0, 1, or 0.ddd / 1.000; kept as thousandths.
        let v = v.trim();
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
        return match int {
            "0" => Some(frac_value),
            "1" if frac_value == 0 => Some(1000),
            _ => None,
        };
    }
    Some(1000)
}

/// Chooses the response's media type from `Accept` (see the module documentation). Among equally
/// acceptable types the more specific match wins, then a plain type over a oneM2M one, then
/// `request`, the serialisation of the request's body (JSON when it had none), which is also the
/// answer when there is no `Accept`.
pub(crate) fn negotiate(accept: Option<&str>, request: Option<Serialization>) -> Result<Format, Error> {
    let preferred = request.unwrap_or_default();
    let accept = match accept.map(str::trim) {
        None | Some("") => return Ok(Format::plain(preferred)),
        Some(a) => a,
    };
    // For each offered type: (q, specificity, position) of the most specific range matching it.
    let mut best: [Option<(u16, u8, usize)>; OFFERED.len()] = [None; OFFERED.len()];
    for (pos, range) in accept.split(',').enumerate() {
        let (mt, params) = range.split_once(';').unwrap_or((range, ""));
        let mt = mt.trim().to_ascii_lowercase();
        let Some(q) = quality(params) else { continue };
        for (i, offer) in OFFERED.iter().enumerate() {
            let specificity = match mt.as_str() {
                "*/*" => 0,
                "application/*" => 1,
                m if m == offer.media_type => 2,
                _ => continue,
            };
            if best[i].is_none_or(|(_, s, _)| specificity > s) {
                best[i] = Some((q, specificity, pos));
            }
        }
    }
    OFFERED
        .iter()
        .zip(best)
        .filter_map(|(offer, b)| b.filter(|(q, _, _)| *q > 0).map(|b| (offer, b)))
        .max_by_key(|(offer, (q, specificity, pos))| {
            let plain = offer.media_type == offer.ser.media_type();
            (*q, *specificity, plain, offer.ser == preferred, std::cmp::Reverse(*pos))
        })
        .map(|(offer, _)| *offer)
        .ok_or_else(|| {
            let shown: String = accept.chars().take(100).collect();
            Error::new(
                Rsc::NotAcceptable,
                format!(
                    "none of the accepted media types {shown:?} can be served: application/json, application/cbor \
                     and application/vnd.onem2m-res+json/+cbor can"
                ),
            )
        })
}

/// The serialisation a `Content-Type` names, if it is one the binding reads.
fn request_serialization(headers: &HeaderMap) -> Option<Serialization> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(Serialization::from_media_type)
}

/// The operation an HTTP method implies (TS-0009 §6.2.1): POST is CREATE when `Content-Type` has
/// `ty=`, NOTIFY otherwise. `None` for methods outside the binding.
pub(crate) fn operation_of(method: &Method, headers: &HeaderMap) -> Option<Operation> {
    Some(match *method {
        Method::GET => Operation::Retrieve,
        Method::PUT => Operation::Update,
        Method::DELETE => Operation::Delete,
        Method::POST => {
            let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if ct.split(';').skip(1).any(|p| p.trim().split_once('=').is_some_and(|(k, _)| k.trim() == "ty")) {
                Operation::Create
            } else {
                Operation::Notify
            }
        }
        _ => return None,
    })
}

/// The wait before executing a request, from its `oet` (TS-0004 §8.1.2: the operation is executed
/// at that time), and the checks of its `rset`: a result that has expired, or would expire before
/// the operation may run, is not produced (4008). A wait longer than `max_wait` is refused (4000):
/// a blocking request holds its connection while it waits, and Warden does not serve non-blocking
/// requests.
pub(crate) fn schedule(req: &Request, now: Timestamp, max_wait: Duration) -> Result<Duration, Error> {
    let oet = req.oet.map(|t| t.resolve(now));
    if let Some(rset) = req.rset.map(|t| t.resolve(now)) {
        if rset < now {
            return Err(Error::new(Rsc::RequestTimeout, "the result expiration time (rset) has passed"));
        }
        if oet.is_some_and(|oet| oet > rset) {
            return Err(Error::new(
                Rsc::RequestTimeout,
                "the result would expire (rset) before the operation may be executed (oet)",
            ));
        }
    }
    let Some(oet) = oet.filter(|oet| *oet > now) else { return Ok(Duration::ZERO) };
    if req.rqet.is_some_and(|rqet| rqet.resolve(now) < oet) {
        return Err(Error::new(
            Rsc::RequestTimeout,
            "the request would expire (rqet) before the operation may be executed (oet)",
        ));
    }
    let wait = oet.since(now);
    if wait > max_wait {
        return Err(Error::bad_request(format!(
            "the operation execution time (oet) is {} s ahead; a blocking request is held at most {} s",
            wait.as_secs(),
            max_wait.as_secs()
        )));
    }
    Ok(wait)
}

/// What every answer to a request echoes, read from its headers before anything else: the request
/// ID, the release version and the vendor information, and the media type to answer in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub(crate) rqi: String,
    pub(crate) rvi: Option<String>,
    pub(crate) vsi: Option<String>,
    /// The negotiated media type; when negotiation failed, the request's own serialisation (the
    /// error is answered in it).
    pub(crate) format: Format,
    /// Why negotiation failed, if it did.
    pub(crate) not_acceptable: Option<Error>,
}

fn header<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Error> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| Error::bad_request(format!("header {name} is not valid text"))),
    }
}

/// Percent-decodes a path or query component; `None` for invalid escapes or UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `To` of a request path (TS-0009 §6.2.2.1): `/~/csi/x` is SP-relative, `/_/sp/csi/x` absolute,
/// anything else CSE-relative.
pub(crate) fn target_of_path(path: &str) -> Result<String, Error> {
    let path = percent_decode(path).ok_or_else(|| Error::bad_request("the path has an invalid %-escape"))?;
    let to = if let Some(rest) = path.strip_prefix("/~/") {
        format!("/{rest}")
    } else if let Some(rest) = path.strip_prefix("/_/") {
        format!("//{rest}")
    } else {
        path.strip_prefix('/').unwrap_or(&path).to_owned()
    };
    if to.is_empty() || to == "/" || to == "//" {
        return Err(Error::not_found("the request has no target"));
    }
    Ok(to)
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Error> {
    v.parse().map_err(|_| Error::bad_request(format!("query parameter {name}: {v:?} is not a valid number")))
}

fn enum_num<T>(name: &str, v: &str, f: impl Fn(i64) -> Option<T>) -> Result<T, Error> {
    f(num(name, v)?).ok_or_else(|| Error::bad_request(format!("query parameter {name}: {v} is not an allowed value")))
}

fn time(name: &str, v: &str) -> Result<Timestamp, Error> {
    Timestamp::parse(v).map_err(|e| Error::bad_request(format!("query parameter {name}: {e}")))
}

/// Applies the query string to a request: request parameters and filter criteria (TS-0009 Table
/// 6.2.2.2-1). Several values are joined with `+` or given by repeating the parameter.
fn apply_query(req: &mut Request, query: &str) -> Result<(), Error> {
    let mut fc = FilterCriteria::default();
    let mut any_fc = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or_else(|| Error::bad_request("a query parameter has an invalid %-escape"))?;
        let values: Vec<String> = raw
            .split('+')
            .map(percent_decode)
            .collect::<Option<_>>()
            .ok_or_else(|| Error::bad_request(format!("query parameter {k} has an invalid %-escape")))?;
        let v = values.first().map(String::as_str).unwrap_or_default();
        let k = k.as_str();
        match k {
            "rcn" => req.rcn = Some(enum_num(k, v, ResultContent::from_num)?),
            "drt" => req.drt = Some(enum_num(k, v, DesiredIdResultType::from_num)?),
            "rt" => {
                let rtv = enum_num(k, v, ResponseType::from_num)?;
                let nu = req.rt.take().map(|r| r.nu).unwrap_or_default();
                req.rt = Some(ResponseTypeInfo { rtv, nu });
            }
            "atrl" => req.atrl.extend(values.iter().filter(|s| !s.is_empty()).cloned()),
            // Accepted request parameters that do not change how Warden answers.
            "rp" | "rpts" | "da" | "rids" | "tids" | "ltids" | "tqi" | "asi" | "auri" | "sqi" | "nid" => {}
            "fu" => {
                fc.fu = Some(enum_num(k, v, FilterUsage::from_num)?);
                any_fc = true;
            }
            "fo" => {
                fc.fo = Some(enum_num(k, v, FilterOperation::from_num)?);
                any_fc = true;
            }
            "ty" => {
                for t in &values {
                    let n: u16 = num(k, t)?;
                    fc.ty.push(n);
                }
                any_fc = true;
            }
            "lbl" => {
                fc.lbl.extend(values.iter().cloned());
                any_fc = true;
            }
            "cty" => {
                fc.cty.extend(values.iter().cloned());
                any_fc = true;
            }
            "crb" | "cra" | "ms" | "us" | "exb" | "exa" => {
                let t = Some(time(k, v)?);
                match k {
                    "crb" => fc.crb = t,
                    "cra" => fc.cra = t,
                    "ms" => fc.ms = t,
                    "us" => fc.us = t,
                    "exb" => fc.exb = t,
                    _ => fc.exa = t,
                }
                any_fc = true;
            }
            "sts" | "stb" | "sza" | "szb" => {
                let n = Some(num::<u64>(k, v)?);
                match k {
                    "sts" => fc.sts = n,
                    "stb" => fc.stb = n,
                    "sza" => fc.sza = n,
                    _ => fc.szb = n,
                }
                any_fc = true;
            }
            "lim" | "ofst" | "lvl" => {
                let n = Some(num::<u32>(k, v)?);
                match k {
                    "lim" => fc.lim = n,
                    "ofst" => fc.ofst = n,
                    _ => fc.lvl = n,
                }
                any_fc = true;
            }
            "smf" | "cfs" | "cfq" | "gq" | "arp" => {
                return Err(Error::new(Rsc::NotImplemented, format!("the filter criterion {k} is not supported")));
            }
            // An attribute of the candidate (`atr`), of a child (`c.`: `catr`) or of the parent
            // (`p.`: `patr`).
            attr if is_known_attribute(attr.strip_prefix("c.").or(attr.strip_prefix("p.")).unwrap_or(attr)) => {
                let (list, nm) = match (attr.strip_prefix("c."), attr.strip_prefix("p.")) {
                    (Some(nm), _) => (&mut fc.catr, nm),
                    (_, Some(nm)) => (&mut fc.patr, nm),
                    _ => (&mut fc.atr, attr),
                };
                for val in &values {
                    list.push(AttributeFilter { nm: nm.to_owned(), val: Value::String(val.clone()) });
                }
                any_fc = true;
            }
            other => return Err(Error::bad_request(format!("unknown query parameter {other:?}"))),
        }
    }
    if any_fc {
        req.fc = Some(fc);
    }
    Ok(())
}

/// What can be read from the headers before the body: the echo for any answer.
pub(crate) fn echo_of(headers: &HeaderMap) -> Echo {
    let text = |n: &HeaderName| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = request_serialization(headers);
    let accept = headers.get(ACCEPT).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let (format, not_acceptable) = match negotiate(accept, request) {
        Ok(f) => (f, None),
        Err(e) => (Format::plain(request.unwrap_or_default()), Some(e)),
    };
    Echo {
        rqi: text(&X_M2M_RI).unwrap_or_default(),
        rvi: text(&X_M2M_RVI),
        vsi: text(&X_M2M_VSI),
        format,
        not_acceptable,
    }
}

/// Maps an HTTP request to a request primitive.
pub(crate) fn to_primitive(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Request, Error> {
    let content_type = header(headers, &CONTENT_TYPE)?;
    let mut ty = None;
    let mut ser = None;
    if let Some(ct) = content_type {
        ser =
            Some(Serialization::from_media_type(ct).ok_or_else(|| {
                Error::new(Rsc::UnsupportedMediaType, format!("Content-Type {ct:?} is not supported"))
            })?);
        for param in ct.split(';').skip(1) {
            if let Some(("ty", v)) = param.trim().split_once('=') {
                let n: i64 =
                    v.trim().parse().map_err(|_| Error::bad_request(format!("Content-Type ty={v} is not a number")))?;
                ty = Some(
                    ResourceType::from_num(n)
                        .ok_or_else(|| Error::bad_request(format!("ty={n} is not a resource type")))?,
                );
            }
        }
    }
    let op = operation_of(method, headers)
        .ok_or_else(|| Error::new(Rsc::OperationNotAllowed, format!("method {method} is not part of the binding")))?;
    let to = target_of_path(path)?;
    let rqi = header(headers, &X_M2M_RI)?.unwrap_or_default().to_owned();
    let from = header(headers, &X_M2M_ORIGIN)?.map(str::to_owned);
    let mut req = Request::new(op, to, from, rqi);
    req.ty = ty;
    req.rvi = header(headers, &X_M2M_RVI)?.map(str::to_owned);
    let abs_rel = |name: &HeaderName| -> Result<Option<AbsRelTime>, Error> {
        header(headers, name)?
            .map(|v| {
                AbsRelTime::parse(v).ok_or_else(|| Error::bad_request(format!("header {name}: {v:?} is not a time")))
            })
            .transpose()
    };
    req.rqet = abs_rel(&X_M2M_RET)?;
    req.rset = abs_rel(&X_M2M_RST)?;
    req.oet = abs_rel(&X_M2M_OET)?;
    req.ot = header(headers, &X_M2M_OT)?
        .map(|v| Timestamp::parse(v).map_err(|e| Error::bad_request(format!("header X-M2M-OT: {e}"))))
        .transpose()?;
    req.ec = header(headers, &X_M2M_EC)?
        .map(|v| v.parse().map_err(|_| Error::bad_request(format!("header X-M2M-EC: {v:?} is not a number"))))
        .transpose()?;
    if let Some(rtu) = header(headers, &X_M2M_RTU)? {
        let nu = rtu.split('&').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        req.rt = Some(ResponseTypeInfo { rtv: ResponseType::BlockingRequest, nu });
    }
    req.gid = header(headers, &X_M2M_GID)?.map(str::to_owned);
    req.vsi = header(headers, &X_M2M_VSI)?.map(str::to_owned);
    if let Some(q) = query {
        apply_query(&mut req, q)?;
    }
    if !body.is_empty() {
        let ser =
            ser.ok_or_else(|| Error::new(Rsc::UnsupportedMediaType, "a request with a body needs a Content-Type"))?;
        req.pc = Some(ser.decode::<Value>(body)?);
    }
    Ok(req)
}

/// The HTTP status of a response status code (TS-0009 Table 6.3.2-1).
pub(crate) fn status_of(rsc: Rsc) -> StatusCode {
    StatusCode::from_u16(rsc.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Maps a response primitive to the parts of an HTTP response: status, headers, body. `vsi` is the
/// request's vendor information, echoed.
pub(crate) fn from_primitive(resp: &Response, format: Format, vsi: Option<&str>) -> (StatusCode, HeaderMap, Bytes) {
    let mut h = HeaderMap::with_capacity(8);
    let value = |s: &str| HeaderValue::from_str(s).ok();
    h.insert(X_M2M_RSC, HeaderValue::from(resp.rsc.code()));
    if let Some(v) = value(&resp.rqi) {
        h.insert(X_M2M_RI, v);
    }
    if let Some(v) = resp.rvi.as_deref().and_then(value) {
        h.insert(X_M2M_RVI, v);
    }
    if let Some(v) = resp.from.as_deref().and_then(value) {
        h.insert(X_M2M_ORIGIN, v);
    }
    if let Some(v) = vsi.and_then(value) {
        h.insert(X_M2M_VSI, v);
    }
    for (name, t) in [(X_M2M_OT, resp.ot), (X_M2M_RST, resp.rset)] {
        if let Some(v) = t.and_then(|t| value(&t.to_string())) {
            h.insert(name, v);
        }
    }
    if let Some(ec) = resp.ec {
        h.insert(X_M2M_EC, HeaderValue::from(u16::from(ec)));
    }
    if let Some(loc) = resp.location.as_deref().and_then(value) {
        h.insert(CONTENT_LOCATION, loc);
    }
    if let Some(cnst) = resp.cnst {
        h.insert(X_M2M_CTS, HeaderValue::from(u16::from(cnst)));
    }
    if let Some(cnot) = resp.cnot {
        h.insert(X_M2M_CTO, HeaderValue::from(cnot));
    }
    let body = match &resp.pc {
        Some(pc) => {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(format.media_type));
            Bytes::from(format.ser.encode(pc))
        }
        None => Bytes::new(),
    };
    (status_of(resp.rsc), h, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn map(method: Method, uri: &str, h: &[(&str, &str)], body: &str) -> Result<Request, Error> {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        to_primitive(&method, path, query, &headers(h), &Bytes::from(body.to_owned()))
    }

    const STD: &[(&str, &str)] = &[("X-M2M-Origin", "CAdmin"), ("X-M2M-RI", "r1"), ("X-M2M-RVI", "4")];

    #[test]
    fn targets() {
        assert_eq!(target_of_path("/cse-in/ae").unwrap(), "cse-in/ae");
        assert_eq!(target_of_path("/~/id-in/cse-in/ae").unwrap(), "/id-in/cse-in/ae");
        assert_eq!(target_of_path("/_/acme.example.com/id-in/cse-in").unwrap(), "//acme.example.com/id-in/cse-in");
        assert_eq!(target_of_path("/cse-in/a%20b").unwrap(), "cse-in/a b");
        assert_eq!(target_of_path("/").unwrap_err().rsc, Rsc::NotFound);
        assert_eq!(target_of_path("/%zz").unwrap_err().rsc, Rsc::BadRequest);
    }

    #[test]
    fn operations_and_headers() {
        let r = map(Method::GET, "/cse-in", STD, "").unwrap();
        assert_eq!(
            (r.op, r.to.as_str(), r.from.as_deref(), r.rqi.as_str(), r.rvi.as_deref()),
            (Operation::Retrieve, "cse-in", Some("CAdmin"), "r1", Some("4"))
        );
        let mut h = STD.to_vec();
        h.push(("Content-Type", "application/json;ty=2"));
        let r = map(Method::POST, "/cse-in", &h, r#"{"m2m:ae":{"api":"Nx"}}"#).unwrap();
        assert_eq!((r.op, r.ty), (Operation::Create, Some(ResourceType::Ae)));
        assert!(r.pc.is_some());
        let mut h = STD.to_vec();
        h.push(("Content-Type", "application/json"));
        assert_eq!(map(Method::POST, "/cse-in", &h, "{}").unwrap().op, Operation::Notify);
        assert_eq!(map(Method::PUT, "/cse-in", STD, "").unwrap().op, Operation::Update);
        assert_eq!(map(Method::DELETE, "/cse-in", STD, "").unwrap().op, Operation::Delete);
        assert_eq!(map(Method::PATCH, "/cse-in", STD, "").unwrap_err().rsc, Rsc::OperationNotAllowed);
        let mut h = STD.to_vec();
        h.extend([("X-M2M-RET", "20991231T000000"), ("X-M2M-RTU", "http://a&http://b"), ("X-M2M-EC", "2")]);
        let r = map(Method::GET, "/cse-in", &h, "").unwrap();
        assert!(matches!(r.rqet, Some(AbsRelTime::Absolute(_))));
        assert_eq!(r.rt.unwrap().nu, vec!["http://a", "http://b"]);
        assert_eq!(r.ec, Some(2));
    }

    #[test]
    fn bad_requests() {
        let ct = |v: &'static str| {
            let mut h = STD.to_vec();
            h.push(("Content-Type", v));
            h
        };
        assert_eq!(
            map(Method::POST, "/cse-in", &ct("application/json;ty=4"), "{broken").unwrap_err().rsc,
            Rsc::BadRequest
        );
        assert_eq!(
            map(Method::POST, "/cse-in", &ct("application/xml;ty=4"), "<x/>").unwrap_err().rsc,
            Rsc::UnsupportedMediaType
        );
        assert_eq!(
            map(Method::POST, "/cse-in", &ct("application/json;ty=999"), "{}").unwrap_err().rsc,
            Rsc::BadRequest
        );
        assert_eq!(map(Method::POST, "/cse-in", &ct("application/json;ty=x"), "{}").unwrap_err().rsc, Rsc::BadRequest);
        assert_eq!(map(Method::POST, "/cse-in", STD, "{}").unwrap_err().rsc, Rsc::UnsupportedMediaType);
        let mut h = STD.to_vec();
        h.push(("X-M2M-RET", "soon"));
        assert_eq!(map(Method::GET, "/cse-in", &h, "").unwrap_err().rsc, Rsc::BadRequest);
        assert_eq!(map(Method::GET, "/cse-in?rcn=99", STD, "").unwrap_err().rsc, Rsc::BadRequest);
        assert_eq!(map(Method::GET, "/cse-in?bogus=1", STD, "").unwrap_err().rsc, Rsc::BadRequest);
        assert_eq!(map(Method::GET, "/cse-in?lim=x", STD, "").unwrap_err().rsc, Rsc::BadRequest);
        assert_eq!(map(Method::GET, "/cse-in?cra=yesterday", STD, "").unwrap_err().rsc, Rsc::BadRequest);
    }

    #[test]
    fn queries() {
        let r = map(
            Method::GET,
            "/cse-in?fu=1&ty=2+3&ty=4&lbl=a&lbl=b%20c&lim=10&ofst=2&lvl=1&fo=2&rcn=6&drt=2&cr=Cx&atrl=ri+lbl",
            STD,
            "",
        )
        .unwrap();
        let fc = r.fc.unwrap();
        assert_eq!(fc.fu, Some(FilterUsage::DiscoveryCriteria));
        assert_eq!(fc.ty, vec![2, 3, 4]);
        assert_eq!(fc.lbl, vec!["a", "b c"]);
        assert_eq!((fc.lim, fc.ofst, fc.lvl, fc.fo), (Some(10), Some(2), Some(1), Some(FilterOperation::Or)));
        assert_eq!(fc.atr, vec![AttributeFilter { nm: "cr".into(), val: Value::String("Cx".into()) }]);
        assert_eq!(r.rcn, Some(ResultContent::ChildResourceReferences));
        assert_eq!(r.drt, Some(DesiredIdResultType::Unstructured));
        assert_eq!(r.atrl, vec!["ri", "lbl"]);
        assert!(map(Method::GET, "/cse-in?rcn=1", STD, "").unwrap().fc.is_none());
        let fc = map(Method::GET, "/cse-in?fu=1&c.cnf=text/plain:0&p.rn=x", STD, "").unwrap().fc.unwrap();
        let names = |l: &[AttributeFilter]| l.iter().map(|a| a.nm.clone()).collect::<Vec<_>>();
        assert!(fc.atr.is_empty());
        assert_eq!(names(&fc.catr), vec!["cnf"]);
        assert_eq!(names(&fc.patr), vec!["rn"]);
        assert_eq!(fc.catr[0].val, Value::String("text/plain:0".into()));
        assert_eq!(map(Method::GET, "/cse-in?fu=1&c.bogus=1", STD, "").unwrap_err().rsc, Rsc::BadRequest);
    }

    #[test]
    fn responses() {
        let mut resp = Response::new(Rsc::Created, "r1").with_pc(serde_json::json!({"m2m:cnt": {"rn": "c"}}));
        resp.rvi = Some("4".into());
        resp.location = Some("cse-in/c".into());
        let (status, h, body) = from_primitive(&resp, Format::JSON, None);
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(h[&X_M2M_RSC], "2001");
        assert_eq!(h[&X_M2M_RI], "r1");
        assert_eq!(h[&X_M2M_RVI], "4");
        assert_eq!(h[CONTENT_LOCATION], "cse-in/c");
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert!(h.get(&X_M2M_VSI).is_none() && h.get(&X_M2M_RST).is_none() && h.get(&X_M2M_ORIGIN).is_none());
        assert_eq!(&body[..], br#"{"m2m:cnt":{"rn":"c"}}"#);
        let (status, _, body) = from_primitive(&Response::new(Rsc::Deleted, "r2"), Format::JSON, None);
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        let (_, h, body) = from_primitive(&resp, Format::plain(Serialization::Cbor), None);
        assert_eq!(h[CONTENT_TYPE], "application/cbor");
        assert_eq!(Serialization::Cbor.decode::<Value>(&body).unwrap()["m2m:cnt"]["rn"], "c");
        let vnd = negotiate(Some("application/vnd.onem2m-res+json"), None).unwrap();
        assert_eq!(from_primitive(&resp, vnd, None).1[CONTENT_TYPE], "application/vnd.onem2m-res+json");
    }

    #[test]
    fn every_response_parameter_with_a_header_is_mapped() {
        let mut resp = Response::new(Rsc::Ok, "r1");
        resp.rvi = Some("3".into());
        resp.from = Some("/id-in".into());
        resp.ot = Some(Timestamp::parse("20250102T030405").unwrap());
        resp.rset = Some(Timestamp::parse("20250102T040000").unwrap());
        resp.ec = Some(2);
        resp.cnst = Some(2);
        resp.cnot = Some(10);
        let (_, h, _) = from_primitive(&resp, Format::JSON, Some("vendor-x"));
        let got = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got("x-m2m-origin").as_deref(), Some("/id-in"));
        assert_eq!(got("x-m2m-ot").as_deref(), Some("20250102T030405,000000"));
        assert_eq!(got("x-m2m-rst").as_deref(), Some("20250102T040000,000000"));
        assert_eq!(got("x-m2m-ec").as_deref(), Some("2"));
        assert_eq!(got("x-m2m-cts").as_deref(), Some("2"));
        assert_eq!(got("x-m2m-cto").as_deref(), Some("10"));
        assert_eq!(got("x-m2m-vsi").as_deref(), Some("vendor-x"));
    }

    #[test]
    fn every_request_header_of_the_binding_is_mapped() {
        let mut h = STD.to_vec();
        h.extend([
            ("X-M2M-RST", "20991231T000000"),
            ("X-M2M-OET", "1500"),
            ("X-M2M-OT", "20250102T030405"),
            ("X-M2M-GID", "g1"),
            ("X-M2M-VSI", "vendor-x"),
            ("x-m2m-ec", "3"),
        ]);
        let r = map(Method::GET, "/cse-in", &h, "").unwrap();
        assert!(matches!(r.rset, Some(AbsRelTime::Absolute(_))));
        assert_eq!(r.oet, Some(AbsRelTime::Relative(1500)));
        assert_eq!(r.ot, Some(Timestamp::parse("20250102T030405").unwrap()));
        assert_eq!((r.gid.as_deref(), r.vsi.as_deref(), r.ec), (Some("g1"), Some("vendor-x"), Some(3)));
        let e = echo_of(&headers(&h));
        assert_eq!((e.rqi.as_str(), e.rvi.as_deref(), e.vsi.as_deref()), ("r1", Some("4"), Some("vendor-x")));
        for (name, bad) in [("X-M2M-OET", "soon"), ("X-M2M-RST", "later"), ("X-M2M-OT", "now"), ("X-M2M-EC", "x")] {
            let mut h = STD.to_vec();
            h.push((name, bad));
            assert_eq!(map(Method::GET, "/cse-in", &h, "").unwrap_err().rsc, Rsc::BadRequest, "{name}");
        }
    }

    #[test]
    fn the_method_implies_the_operation() {
        let ct = |v: &'static str| headers(&[("Content-Type", v)]);
        assert_eq!(operation_of(&Method::POST, &ct("application/json; ty=4")), Some(Operation::Create));
        assert_eq!(operation_of(&Method::POST, &ct("application/json")), Some(Operation::Notify));
        assert_eq!(operation_of(&Method::POST, &HeaderMap::new()), Some(Operation::Notify));
        assert_eq!(operation_of(&Method::GET, &HeaderMap::new()), Some(Operation::Retrieve));
        assert_eq!(operation_of(&Method::PUT, &HeaderMap::new()), Some(Operation::Update));
        assert_eq!(operation_of(&Method::DELETE, &HeaderMap::new()), Some(Operation::Delete));
        assert_eq!(operation_of(&Method::PATCH, &HeaderMap::new()), None);
    }

    #[test]
    fn negotiation_follows_accept_then_the_request() {
        let json = Some(Serialization::Json);
        let cbor = Some(Serialization::Cbor);
        let mt = |accept: Option<&str>, req| negotiate(accept, req).map(|f| f.media_type);
        // No Accept: the request's serialisation, JSON without a body.
        assert_eq!(mt(None, None), Ok("application/json"));
        assert_eq!(mt(None, cbor), Ok("application/cbor"));
        assert_eq!(mt(Some(""), cbor), Ok("application/cbor"));
        // Wildcards prefer the request's serialisation, and the plain type.
        assert_eq!(mt(Some("*/*"), cbor), Ok("application/cbor"));
        assert_eq!(mt(Some("application/*"), json), Ok("application/json"));
        // q-values decide, whatever the order.
        assert_eq!(mt(Some("application/json;q=0.5, application/cbor"), json), Ok("application/cbor"));
        assert_eq!(mt(Some("application/cbor;q=0.2,application/json;q=0.9"), cbor), Ok("application/json"));
        assert_eq!(mt(Some("application/json; q=1.0, application/cbor; q=1"), cbor), Ok("application/cbor"));
        // The most specific range gives the q: q=0 excludes a type that */* would admit.
        assert_eq!(mt(Some("*/*;q=0.8, application/json;q=0"), json), Ok("application/cbor"));
        // Vendor types, with parameters and in any case.
        assert_eq!(mt(Some("application/vnd.onem2m-res+json"), None), Ok("application/vnd.onem2m-res+json"));
        assert_eq!(mt(Some("Application/Vnd.oneM2M-res+CBOR; q=0.5"), None), Ok("application/vnd.onem2m-res+cbor"));
        assert_eq!(mt(Some("application/xml, application/json;charset=utf-8"), cbor), Ok("application/json"));
        // Nothing acceptable: 5207, as the RSC table maps it to 406.
        for bad in ["application/xml", "text/html, application/json;q=0", "application/vnd.onem2m-ntfy+json"] {
            assert_eq!(negotiate(Some(bad), json).unwrap_err().rsc, Rsc::NotAcceptable, "{bad}");
        }
        // A malformed q ignores its range.
        assert_eq!(mt(Some("application/cbor;q=2, application/json"), cbor), Ok("application/json"));
        assert!(mt(Some("application/cbor;q=abc"), cbor).is_err());
        // The echo answers a failed negotiation in the request's serialisation.
        let e = echo_of(&headers(&[("Accept", "application/xml"), ("Content-Type", "application/cbor;ty=4")]));
        assert_eq!(e.format.ser, Serialization::Cbor);
        assert_eq!(e.not_acceptable.unwrap().rsc, Rsc::NotAcceptable);
    }

    #[test]
    fn oet_and_rset_schedule_the_operation() {
        let now = Timestamp::parse("20250101T120000").unwrap();
        let max = Duration::from_secs(60);
        let mut req = Request::new(Operation::Retrieve, "cse-in", Some("CAdmin".into()), "r1");
        assert_eq!(schedule(&req, now, max), Ok(Duration::ZERO));
        req.oet = Some(AbsRelTime::Relative(1500));
        assert_eq!(schedule(&req, now, max), Ok(Duration::from_millis(1500)));
        req.oet = Some(AbsRelTime::Absolute(Timestamp::parse("20250101T115959").unwrap()));
        assert_eq!(schedule(&req, now, max), Ok(Duration::ZERO), "a past oet runs at once");
        req.oet = Some(AbsRelTime::Relative(61_000));
        assert_eq!(schedule(&req, now, max).unwrap_err().rsc, Rsc::BadRequest, "too far ahead");
        req.oet = Some(AbsRelTime::Relative(2000));
        req.rqet = Some(AbsRelTime::Relative(1000));
        assert_eq!(schedule(&req, now, max).unwrap_err().rsc, Rsc::RequestTimeout, "expires before oet");
        req.rqet = None;
        req.rset = Some(AbsRelTime::Relative(1000));
        assert_eq!(schedule(&req, now, max).unwrap_err().rsc, Rsc::RequestTimeout, "result expires before oet");
        req.oet = None;
        assert_eq!(schedule(&req, now, max), Ok(Duration::ZERO));
        req.rset = Some(AbsRelTime::Absolute(Timestamp::parse("20250101T115959").unwrap()));
        assert_eq!(schedule(&req, now, max).unwrap_err().rsc, Rsc::RequestTimeout, "the result expired");
    }
}
