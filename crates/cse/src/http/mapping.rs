//! The HTTP binding's mapping (TS-0009 §6): an HTTP request to a request primitive, and a response
//! primitive to an HTTP response. Pure functions, no I/O.

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
const X_M2M_VSI: HeaderName = HeaderName::from_static("x-m2m-vsi");
const X_M2M_CTS: HeaderName = HeaderName::from_static("x-m2m-cts");
const X_M2M_CTO: HeaderName = HeaderName::from_static("x-m2m-cto");

/// What the binding needs to answer a request whose mapping failed: the request ID and release
/// version to echo, and the serialisation to answer in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub(crate) rqi: String,
    pub(crate) rvi: Option<String>,
    pub(crate) accept: Serialization,
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
            // An attribute of the candidate, of a child (`c.`) or of the parent (`p.`).
            attr if is_known_attribute(attr.strip_prefix("c.").or(attr.strip_prefix("p.")).unwrap_or(attr)) => {
                for val in &values {
                    fc.atr.push(AttributeFilter { nm: attr.to_owned(), val: Value::String(val.clone()) });
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

/// The response serialisation an `Accept` header asks for (JSON when absent).
pub(crate) fn accept_of(headers: &HeaderMap) -> Result<Serialization, Error> {
    match headers.get(ACCEPT).and_then(|v| v.to_str().ok()) {
        None | Some("") => Ok(Serialization::Json),
        Some(a) => Serialization::from_accept(a).ok_or_else(|| {
            Error::new(Rsc::NotAcceptable, format!("none of the accepted media types {a:?} is supported"))
        }),
    }
}

/// What can be read from the headers before the body: the echo for any answer.
pub(crate) fn echo_of(headers: &HeaderMap) -> Echo {
    let text = |n: &HeaderName| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Echo {
        rqi: text(&X_M2M_RI).unwrap_or_default(),
        rvi: text(&X_M2M_RVI),
        accept: accept_of(headers).unwrap_or_default(),
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
    accept_of(headers)?;
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
    let op = match *method {
        Method::GET => Operation::Retrieve,
        Method::PUT => Operation::Update,
        Method::DELETE => Operation::Delete,
        Method::POST if ty.is_some() => Operation::Create,
        Method::POST => Operation::Notify,
        _ => return Err(Error::new(Rsc::OperationNotAllowed, format!("method {method} is not part of the binding"))),
    };
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

/// Maps a response primitive to the parts of an HTTP response: status, headers, body.
pub(crate) fn from_primitive(resp: &Response, ser: Serialization) -> (StatusCode, HeaderMap, Bytes) {
    let mut h = HeaderMap::with_capacity(6);
    let value = |s: &str| HeaderValue::from_str(s).ok();
    h.insert(X_M2M_RSC, HeaderValue::from(resp.rsc.code()));
    if let Some(v) = value(&resp.rqi) {
        h.insert(X_M2M_RI, v);
    }
    if let Some(v) = resp.rvi.as_deref().and_then(value) {
        h.insert(X_M2M_RVI, v);
    }
    if let Some(ot) = resp.ot
        && let Some(v) = value(&ot.to_string())
    {
        h.insert(X_M2M_OT, v);
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
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ser.media_type()));
            Bytes::from(ser.encode(pc))
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
        h.push(("Accept", "application/xml"));
        assert_eq!(map(Method::GET, "/cse-in", &h, "").unwrap_err().rsc, Rsc::NotAcceptable);
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
        assert_eq!(fc.atr.iter().map(|a| a.nm.as_str()).collect::<Vec<_>>(), vec!["c.cnf", "p.rn"]);
        assert_eq!(map(Method::GET, "/cse-in?fu=1&c.bogus=1", STD, "").unwrap_err().rsc, Rsc::BadRequest);
    }

    #[test]
    fn responses() {
        let mut resp = Response::new(Rsc::Created, "r1").with_pc(serde_json::json!({"m2m:cnt": {"rn": "c"}}));
        resp.rvi = Some("4".into());
        resp.location = Some("cse-in/c".into());
        let (status, h, body) = from_primitive(&resp, Serialization::Json);
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(h[&X_M2M_RSC], "2001");
        assert_eq!(h[&X_M2M_RI], "r1");
        assert_eq!(h[&X_M2M_RVI], "4");
        assert_eq!(h[CONTENT_LOCATION], "cse-in/c");
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(&body[..], br#"{"m2m:cnt":{"rn":"c"}}"#);
        let (status, _, body) = from_primitive(&Response::new(Rsc::Deleted, "r2"), Serialization::Json);
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        let (_, h, body) = from_primitive(&resp, Serialization::Cbor);
        assert_eq!(h[CONTENT_TYPE], "application/cbor");
        assert_eq!(Serialization::Cbor.decode::<Value>(&body).unwrap()["m2m:cnt"]["rn"], "c");
    }
}
