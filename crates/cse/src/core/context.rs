//! Access control contexts (`acco`, TS-0001 §9.6.2.2, TS-0004 §6.3.5.27): a rule that lists
//! contexts applies only to a request that satisfies one of them, and a context is satisfied when
//! every parameter it gives is:
//! - `actw`: the time of the request falls in one of the windows, each a schedule entry in the
//!   crontab-like format of TS-0004 (`second minute hour dayOfMonth month dayOfWeek year`, UTC;
//!   `*`, `a`, `a-b`, `*/n`, `a-b/n` and comma lists; day of week 0 = Sunday to 6; all fields must
//!   match — day of month and day of week are not ORed as in Unix cron);
//! - `acip`: the request came from one of the addresses, `ipv4` in dotted-decimal and `ipv6` in
//!   RFC 5952 notation, each with an optional prefix length (RFC 4632 CIDR).
//!
//! `aclr` (a location region) is refused with 4000: the CSE does not know where its peers are, and
//! a rule it cannot evaluate must not be stored as if it restricted anything.

use std::net::IpAddr;

use onem2m::{Error, Timestamp};
use serde_json::Value;

/// One field of a schedule entry: the values it matches, as inclusive ranges with a step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field(Vec<(u32, u32, u32)>);

impl Field {
    fn parse(text: &str, lo: u32, hi: u32, name: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().map_err(|_| format!("{name}: {s:?} is not a step"))?;
                    if step == 0 {
                        return Err(format!("{name}: a step of 0"));
                    }
                    (r, step)
                }
                None => (part, 1),
            };
            let (a, b) = if range == "*" {
                (lo, hi)
            } else {
                let num = |s: &str| -> Result<u32, String> {
                    let v: u32 = s.parse().map_err(|_| format!("{name}: {s:?} is not a number"))?;
                    if (lo..=hi).contains(&v) { Ok(v) } else { Err(format!("{name}: {v} is not within {lo}-{hi}")) }
                };
                match range.split_once('-') {
                    Some((a, b)) => (num(a)?, num(b)?),
                    // `a/n` means from a to the end, as in cron.
                    None if step > 1 => (num(range)?, hi),
                    None => {
                        let v = num(range)?;
                        (v, v)
                    }
                }
            };
            if a > b {
                return Err(format!("{name}: the range {a}-{b} is empty"));
            }
            items.push((a, b, step));
        }
        Ok(Self(items))
    }

    fn matches(&self, v: u32) -> bool {
        self.0.iter().any(|&(a, b, step)| (a..=b).contains(&v) && (v - a).is_multiple_of(step))
    }
}

/// A schedule entry (`m2m:scheduleEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule([Field; 7]);

/// The calendar fields of a time, in the order of a schedule entry.
fn calendar(t: Timestamp) -> [u32; 7] {
    // The timestamp's own rendering, `YYYYMMDDTHHMMSS,ffffff`, is the one calendar conversion.
    let s = t.to_string();
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
    let weekday = (t.secs().div_euclid(86_400) + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
    [n(13..15), n(11..13), n(9..11), n(6..8), n(4..6), weekday, n(0..4)]
}

impl Schedule {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        const FIELDS: [(&str, u32, u32); 7] = [
            ("second", 0, 59),
            ("minute", 0, 59),
            ("hour", 0, 23),
            ("day of month", 1, 31),
            ("month", 1, 12),
            ("day of week", 0, 6),
            ("year", 1970, 9999),
        ];
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 7 {
            return Err(format!("{text:?} is not 'second minute hour dayOfMonth month dayOfWeek year'"));
        }
        let mut fields = Vec::with_capacity(7);
        for (part, (name, lo, hi)) in parts.iter().zip(FIELDS) {
            fields.push(Field::parse(part, lo, hi, name)?);
        }
        let fields: [Field; 7] = fields.try_into().map_err(|_| "seven fields".to_owned())?;
        Ok(Self(fields))
    }

    pub(crate) fn matches(&self, t: Timestamp) -> bool {
        self.0.iter().zip(calendar(t)).all(|(f, v)| f.matches(v))
    }
}

/// An address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpPrefix {
    net: IpAddr,
    len: u8,
}

impl IpPrefix {
    fn parse(text: &str, v6: bool) -> Result<Self, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| format!("{text:?}: {l:?} is not a prefix length"))?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IP address"))?;
        let max = if net.is_ipv6() { 128 } else { 32 };
        if net.is_ipv6() != v6 {
            return Err(format!("{text:?} is not an IPv{} address", if v6 { 6 } else { 4 }));
        }
        let len = len.unwrap_or(max);
        if len > max {
            return Err(format!("{text:?}: the prefix is longer than {max} bits"));
        }
        Ok(Self { net, len })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        // A peer on a dual-stack socket may appear as an IPv4-mapped IPv6 address.
        let ip = ip.to_canonical();
        if ip.is_ipv6() != self.net.is_ipv6() {
            return false;
        }
        let mask = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
        let mask = if self.net.is_ipv6() { mask } else { mask & (u128::from(u32::MAX) << 96) };
        bits(ip) & mask == bits(self.net) & mask
    }
}

/// One access control context (an element of `acco`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Context {
    /// `actw`: any of them; none given means any time.
    windows: Vec<Schedule>,
    /// `acip`: any of them; `None` means from anywhere.
    ips: Option<Vec<IpPrefix>>,
}

/// What a context is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestContext {
    pub(crate) now: Timestamp,
    pub(crate) remote: Option<IpAddr>,
}

impl Context {
    pub(crate) fn satisfied(&self, rc: &RequestContext) -> bool {
        let time_ok = self.windows.is_empty() || self.windows.iter().any(|w| w.matches(rc.now));
        let ip_ok = match &self.ips {
            None => true,
            Some(list) => rc.remote.is_some_and(|ip| list.iter().any(|p| p.contains(ip))),
        };
        time_ok && ip_ok
    }
}

fn string_list<'a>(v: &'a Value, what: &str) -> Result<Vec<&'a str>, String> {
    let list = v.as_array().ok_or_else(|| format!("{what} must be a list"))?;
    list.iter().map(|x| x.as_str().ok_or_else(|| format!("{what} must be a list of strings"))).collect()
}

/// Parses `acco`: a list of contexts (one object is taken as a list of one).
pub(crate) fn parse_contexts(acco: &Value) -> Result<Vec<Context>, String> {
    let items: Vec<&Value> = match acco {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![acco],
        _ => return Err("acco must be a list of access control contexts".into()),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let obj = item.as_object().ok_or_else(|| format!("acco[{i}] must be an object"))?;
        let mut ctx = Context::default();
        for (k, v) in obj {
            match k.as_str() {
                "actw" => {
                    for w in string_list(v, &format!("acco[{i}].actw"))? {
                        ctx.windows.push(Schedule::parse(w).map_err(|e| format!("acco[{i}].actw: {e}"))?);
                    }
                }
                "acip" => {
                    let ips = v.as_object().ok_or_else(|| format!("acco[{i}].acip must be an object"))?;
                    let mut list = Vec::new();
                    for (family, addrs) in ips {
                        let v6 = match family.as_str() {
                            "ipv4" => false,
                            "ipv6" => true,
                            other => return Err(format!("acco[{i}].acip has an unknown member '{other}'")),
                        };
                        for a in string_list(addrs, &format!("acco[{i}].acip.{family}"))? {
                            list.push(IpPrefix::parse(a, v6).map_err(|e| format!("acco[{i}].acip.{family}: {e}"))?);
                        }
                    }
                    ctx.ips = Some(list);
                }
                "aclr" => {
                    return Err(format!(
                        "acco[{i}].aclr: access control by location region is not supported by this CSE"
                    ));
                }
                other => return Err(format!("acco[{i}] has an unknown member '{other}'")),
            }
        }
        out.push(ctx);
    }
    Ok(out)
}

/// Checks `acco` for a CREATE or UPDATE of an access control policy.
pub(crate) fn validate_contexts(where_: &str, acco: &Value) -> Result<(), Error> {
    parse_contexts(acco).map(|_| ()).map_err(|e| Error::bad_request(format!("{where_}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn schedules() {
        // 2024-03-15 was a Friday (5).
        let t = at("20240315T083005");
        assert_eq!(calendar(t), [5, 30, 8, 15, 3, 5, 2024]);
        assert_eq!(calendar(at("19700104T000000"))[5], 0, "1970-01-04 was a Sunday");
        for (entry, want) in [
            ("* * * * * * *", true),
            ("5 30 8 15 3 5 2024", true),
            ("* * 8-17 * * 1-5 *", true),
            ("* * 9-17 * * 1-5 *", false),
            ("* * * * * 0,6 *", false),
            ("*/5 * * * * * *", true),
            ("*/2 * * * * * *", false),
            ("1/2 * * * * * *", true),
            ("0-10/5 * * * * * *", true),
            ("* * * * * * 2000-2023", false),
            ("* * * 1 * * *", false),
        ] {
            assert_eq!(Schedule::parse(entry).unwrap().matches(t), want, "{entry}");
        }
        for bad in [
            "* * * * * *",
            "* * * * * * * *",
            "60 * * * * * *",
            "* * 24 * * * *",
            "* * * 0 * * *",
            "* * * * 13 * *",
            "* * * * * 7 *",
            "*/0 * * * * * *",
            "5-1 * * * * * *",
            "x * * * * * *",
            "",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        let p = |s: &str, v6| IpPrefix::parse(s, v6).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p("192.168.1.0/24", false).contains(ip("192.168.1.77")));
        assert!(!p("192.168.1.0/24", false).contains(ip("192.168.2.1")));
        assert!(p("10.0.0.1", false).contains(ip("10.0.0.1")));
        assert!(!p("10.0.0.1", false).contains(ip("10.0.0.2")));
        assert!(p("0.0.0.0/0", false).contains(ip("8.8.8.8")));
        assert!(p("127.0.0.1", false).contains(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(!p("127.0.0.1", false).contains(ip("::1")));
        assert!(p("2001:db8::/32", true).contains(ip("2001:db8:1::5")));
        assert!(!p("2001:db8::/32", true).contains(ip("2001:db9::1")));
        assert!(!p("::1", true).contains(ip("127.0.0.1")));
        for (bad, v6) in [("1.2.3.4/33", false), ("::1", false), ("1.2.3.4", true), ("::/129", true), ("x", false)] {
            assert!(IpPrefix::parse(bad, v6).is_err(), "{bad}");
        }
    }

    #[test]
    fn contexts() {
        let rc = |now: &str, ip: &str| RequestContext { now: at(now), remote: Some(ip.parse().unwrap()) };
        let ctxs = parse_contexts(&json!([
            {"actw": ["* * 8-17 * * 1-5 *"], "acip": {"ipv4": ["10.0.0.0/8"]}},
            {"acip": {"ipv6": ["::1"]}}
        ]))
        .unwrap();
        let any = |r: &RequestContext| ctxs.iter().any(|c| c.satisfied(r));
        assert!(any(&rc("20240315T090000", "10.1.2.3")));
        assert!(!any(&rc("20240316T090000", "10.1.2.3")), "Saturday");
        assert!(!any(&rc("20240315T090000", "11.1.2.3")), "another network");
        assert!(any(&rc("20240316T230000", "::1")), "the second context");
        assert!(
            !Context { ips: Some(vec![]), ..Default::default() }
                .satisfied(&RequestContext { now: at("20240315T090000"), remote: None })
        );
        assert!(parse_contexts(&json!({"actw": ["* * * * * * *"]})).is_ok(), "one object");
        for bad in [
            json!([{"aclr": {"accc": ["DE"]}}]),
            json!([{"bogus": 1}]),
            json!([{"acip": {"ipv5": []}}]),
            json!([{"actw": "* * * * * * *"}]),
            json!(5),
        ] {
            assert!(parse_contexts(&bad).is_err(), "{bad}");
        }
    }
}
