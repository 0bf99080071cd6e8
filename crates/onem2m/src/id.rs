//! Identifiers of TS-0001 §7.1–7.2 (ONEM2M.md §1), each a newtype that can only hold a valid value.
//!
//! Every identifier may use only the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~`; the forms
//! with slashes (SP-relative, absolute) are built from such segments.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ReleaseVersion;

/// Why an identifier did not parse. The message names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn err<T>(kind: &'static str, value: &str, reason: &'static str) -> Result<T, IdError> {
    Err(IdError { kind, value: value.chars().take(80).collect(), reason })
}

/// Longest identifier segment we accept; longer ones are refused rather than stored.
pub const MAX_ID_LEN: usize = 255;

/// True for the RFC 3986 unreserved characters.
pub fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Matches `text` against a pattern in which `*` stands for any run of characters (the empty run
/// included) and `?` for one character, as originator patterns (`acor`, `allowedRecipients`,
/// deny lists) and label filters use them. Linear in practice: it backtracks only to the last `*`.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pat, s) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut i) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

/// A non-empty run of unreserved characters of bounded length.
fn check_segment(kind: &'static str, whole: &str, seg: &str) -> Result<(), IdError> {
    if seg.is_empty() {
        return err(kind, whole, "empty segment");
    }
    if seg.len() > MAX_ID_LEN {
        return err(kind, whole, "too long");
    }
    if !seg.chars().all(is_unreserved) {
        return err(kind, whole, "only the unreserved characters A-Z a-z 0-9 - . _ ~ are allowed");
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// An App-ID (TS-0001 §7.1.3). Registered: `R{authority}.{reverseDNS}.{name}` with at least three
    /// non-empty dot-separated parts, issued by the App-ID Registration Authority. Non-registered:
    /// `N{anything}`. A lowercase `r` is the legacy registered form, tolerated for release versions
    /// 2a and 3 only (see [`AppId::parse_for_release`]).
    AppId,
    "App-ID"
);

/// Which of the App-ID forms a value has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppIdKind {
    /// `R…`: issued by the App-ID Registration Authority, globally unique.
    Registered,
    /// `r…`: the legacy registered form, forbidden from release 4.
    LegacyRegistered,
    /// `N…`: not registered, not guaranteed unique.
    NonRegistered,
}

impl AppId {
    /// Parses an App-ID in its current-release form: `R` with three dot-separated parts, or `N…`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_for_release(s, ReleaseVersion::V4)
    }

    /// Parses an App-ID as a CSE must for a request of release version `rv`: the lowercase `r`
    /// form is accepted for 2a and 3 only, and (like ACME) without a check of its structure.
    pub fn parse_for_release(s: &str, rv: ReleaseVersion) -> Result<Self, IdError> {
        const K: &str = "App-ID";
        if s.len() < 2 {
            return err(K, s, "must be at least 2 characters");
        }
        check_segment(K, s, s)?;
        match s.as_bytes()[0] {
            b'R' => {
                let parts: Vec<&str> = s[1..].split('.').collect();
                if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
                    return err(K, s, "a registered App-ID is R{authority}.{reverseDNS}.{name}");
                }
            }
            b'r' => {
                if !rv.allows_lowercase_app_id() {
                    return err(K, s, "the lowercase 'r' form is forbidden from release 4");
                }
            }
            b'N' => {}
            _ => return err(K, s, "must start with 'R' (registered) or 'N' (non-registered)"),
        }
        Ok(Self(s.to_owned()))
    }

    pub fn kind(&self) -> AppIdKind {
        match self.0.as_bytes()[0] {
            b'R' => AppIdKind::Registered,
            b'r' => AppIdKind::LegacyRegistered,
            _ => AppIdKind::NonRegistered,
        }
    }

    /// True for the forms the App-ID Registration Authority issues (`R…`, and legacy `r…`).
    pub fn is_registered(&self) -> bool {
        self.kind() != AppIdKind::NonRegistered
    }

    /// Builds a registered App-ID `R{authority}.{reverseDns}.{name}`, checking every part.
    pub fn registered(authority: &str, reverse_dns: &str, name: &str) -> Result<Self, IdError> {
        let s = format!("R{authority}.{reverse_dns}.{name}");
        if authority.is_empty() || authority.contains('.') {
            return err("App-ID", &s, "the authority must be one non-empty part without dots");
        }
        Self::parse(&s)
    }
}

string_id!(
    /// A CSE-relative AE-ID-Stem: `C…` (assigned by the Registrar CSE) or `S…` (assigned by the
    /// M2M Service Provider). The bare `C` and `S` are requests for a stem, not stems.
    AeIdStem,
    "AE-ID-Stem"
);

/// Who assigned an AE-ID-Stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StemKind {
    /// `C…`: unique only within its Registrar CSE.
    Cse,
    /// `S…`: unique within the SP domain.
    Sp,
}

impl AeIdStem {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const K: &str = "AE-ID-Stem";
        check_segment(K, s, s)?;
        if !(s.starts_with('C') || s.starts_with('S')) {
            return err(K, s, "must start with 'C' or 'S'");
        }
        if s.len() < 2 {
            return err(K, s, "'C' and 'S' alone ask for a stem; they are not one");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn kind(&self) -> StemKind {
        if self.0.starts_with('C') { StemKind::Cse } else { StemKind::Sp }
    }
}

string_id!(
    /// An SP-relative CSE-ID such as `/id-in`. Stored and displayed with its leading slash.
    CseId,
    "CSE-ID"
);

impl CseId {
    /// Parses `/name`. The bare `name` is accepted too (configuration files often omit the slash).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let name = s.strip_prefix('/').unwrap_or(s);
        if name.starts_with('/') {
            return err("CSE-ID", s, "an SP-relative CSE-ID has a single leading '/'");
        }
        check_segment("CSE-ID", s, name)?;
        Ok(Self(format!("/{name}")))
    }

    /// The name without the slash, e.g. `id-in`: the CSEBase's resource ID by convention.
    pub fn name(&self) -> &str {
        &self.0[1..]
    }
}

string_id!(
    /// An M2M-SP-ID, `//` followed by an FQDN, e.g. `//acme.example.com`.
    SpId,
    "SP-ID"
);

impl SpId {
    /// Parses `//fqdn`. The bare FQDN is accepted too, for configuration.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const K: &str = "SP-ID";
        let fqdn = s.strip_prefix("//").unwrap_or(s);
        if fqdn.is_empty() || fqdn.len() > 253 {
            return err(K, s, "the FQDN must have 1 to 253 characters");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !fqdn.split('.').all(label_ok) {
            return err(K, s, "not a valid FQDN");
        }
        Ok(Self(format!("//{fqdn}")))
    }

    /// The FQDN without the leading `//`.
    pub fn fqdn(&self) -> &str {
        &self.0[2..]
    }
}

string_id!(
    /// A resource name (`rn`): a non-empty run of unreserved characters.
    ResourceName,
    "resource name"
);

impl ResourceName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_segment("resource name", s, s)?;
        Ok(Self(s.to_owned()))
    }
}

/// An AE-ID in one of its three forms (ONEM2M.md §1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AeId {
    /// CSE-relative: the stem alone, e.g. `C190XX7T`.
    Stem(AeIdStem),
    /// SP-relative: `/{registrar-CSE}/{C-stem}` or `/{S-stem}`.
    SpRelative { cse: Option<CseId>, stem: AeIdStem },
    /// Absolute: `{SP-ID}` followed by the SP-relative form.
    Absolute { sp: SpId, cse: Option<CseId>, stem: AeIdStem },
}

impl AeId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const K: &str = "AE-ID";
        if let Some(rest) = s.strip_prefix("//") {
            let (sp, rel) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return err(K, s, "an absolute AE-ID is //{sp-id}/..."),
            };
            let sp = SpId::parse(sp)?;
            match Self::parse(rel)? {
                AeId::SpRelative { cse, stem } => Ok(AeId::Absolute { sp, cse, stem }),
                _ => err(K, s, "malformed absolute AE-ID"),
            }
        } else if let Some(rest) = s.strip_prefix('/') {
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(stem), None, None) => {
                    let stem = AeIdStem::parse(stem)?;
                    if stem.kind() != StemKind::Sp {
                        return err(K, s, "only an S-stem stands alone after the first '/'");
                    }
                    Ok(AeId::SpRelative { cse: None, stem })
                }
                (Some(cse), Some(stem), None) => {
                    let cse = CseId::parse(cse)?;
                    let stem = AeIdStem::parse(stem)?;
                    if stem.kind() != StemKind::Cse {
                        return err(K, s, "an S-stem is not prefixed by a CSE-ID");
                    }
                    Ok(AeId::SpRelative { cse: Some(cse), stem })
                }
                _ => err(K, s, "an SP-relative AE-ID is /{cse-id}/{C-stem} or /{S-stem}"),
            }
        } else {
            Ok(AeId::Stem(AeIdStem::parse(s)?))
        }
    }

    pub fn stem(&self) -> &AeIdStem {
        match self {
            AeId::Stem(s) | AeId::SpRelative { stem: s, .. } | AeId::Absolute { stem: s, .. } => s,
        }
    }

    /// The SP-relative form, given the Registrar CSE of a C-stem.
    pub fn sp_relative(stem: &AeIdStem, registrar: &CseId) -> String {
        match stem.kind() {
            StemKind::Cse => format!("{registrar}/{stem}"),
            StemKind::Sp => format!("/{stem}"),
        }
    }

    /// The absolute form, given the SP and the Registrar CSE of a C-stem.
    pub fn absolute(stem: &AeIdStem, sp: &SpId, registrar: &CseId) -> String {
        format!("{sp}{}", Self::sp_relative(stem, registrar))
    }
}

impl fmt::Display for AeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rel = |f: &mut fmt::Formatter<'_>, cse: &Option<CseId>, stem: &AeIdStem| match cse {
            Some(c) => write!(f, "{c}/{stem}"),
            None => write!(f, "/{stem}"),
        };
        match self {
            AeId::Stem(s) => write!(f, "{s}"),
            AeId::SpRelative { cse, stem } => rel(f, cse, stem),
            AeId::Absolute { sp, cse, stem } => {
                write!(f, "{sp}")?;
                rel(f, cse, stem)
            }
        }
    }
}

impl FromStr for AeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

/// The `From` parameter of a request, classified (TS-0001 §7.2 and §10.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Originator {
    /// Absent or empty: allowed only on AE CREATE, where the CSE picks the stem kind.
    Empty,
    /// `C`: ask the Registrar CSE for a C-stem.
    NewC,
    /// `S`: ask for an S-stem.
    NewS,
    /// An AE-ID in any form.
    Ae(AeId),
    /// A CSE-ID, SP-relative (`/id-mn`) or absolute (`//sp/id-mn`).
    Cse { sp: Option<SpId>, cse: CseId },
}

impl Originator {
    /// Classifies a raw `From` value. Anything that is neither an AE-ID, a request for one, nor a
    /// CSE-ID is refused.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s {
            "" => return Ok(Originator::Empty),
            "C" => return Ok(Originator::NewC),
            "S" => return Ok(Originator::NewS),
            _ => {}
        }
        if let Ok(ae) = AeId::parse(s) {
            return Ok(Originator::Ae(ae));
        }
        if let Some(rest) = s.strip_prefix("//") {
            if let Some(i) = rest.find('/') {
                let sp = SpId::parse(&rest[..i])?;
                let cse = CseId::parse(&rest[i..])?;
                return Ok(Originator::Cse { sp: Some(sp), cse });
            }
        } else if s.starts_with('/') {
            return Ok(Originator::Cse { sp: None, cse: CseId::parse(s)? });
        } else if s.chars().all(is_unreserved) {
            // A bare CSE name such as `id-mn`, as ACME's tests send it.
            return Ok(Originator::Cse { sp: None, cse: CseId::parse(s)? });
        }
        err("originator", s, "not an AE-ID, a CSE-ID, 'C', 'S' or empty")
    }
}

/// The three forms of a `To` parameter (ONEM2M.md §1, "Resource addressing").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// `cse-in/ae/cnt`, `-/ae`, `cin00856`, `cnt123/la`.
    CseRelative(&'a str),
    /// `/{csi}/{cse-relative}`; `path` may be empty (the CSE itself).
    SpRelative { csi: &'a str, path: &'a str },
    /// `//{spi}/{csi}/{cse-relative}`.
    Absolute { spi: &'a str, csi: &'a str, path: &'a str },
}

impl<'a> Target<'a> {
    /// Splits a `To` value into its form. Segments are not validated here: the resolver looks them
    /// up and a bad one is simply not found.
    pub fn parse(to: &'a str) -> Result<Self, IdError> {
        const K: &str = "target";
        if to.is_empty() {
            return err(K, to, "empty");
        }
        if let Some(rest) = to.strip_prefix("//") {
            let mut it = rest.splitn(3, '/');
            let spi = it.next().unwrap_or_default();
            let csi = it.next().unwrap_or_default();
            let path = it.next().unwrap_or_default();
            if spi.is_empty() || csi.is_empty() {
                return err(K, to, "an absolute address is //{sp-id}/{cse-id}/...");
            }
            Ok(Target::Absolute { spi, csi, path })
        } else if let Some(rest) = to.strip_prefix('/') {
            let (csi, path) = rest.split_once('/').unwrap_or((rest, ""));
            if csi.is_empty() {
                return err(K, to, "an SP-relative address is /{cse-id}/...");
            }
            Ok(Target::SpRelative { csi, path })
        } else {
            Ok(Target::CseRelative(to))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn app_id_table() {
        use ReleaseVersion::*;
        let table: &[(&str, ReleaseVersion, bool)] = &[
            ("Ra01.com.company.smartcity", V4, true),
            ("Rabc.com.example.acme", V4, true),
            ("Racme01.com.acme.thermostat", V5, true),
            ("Rabc.com", V4, false),
            ("Rabc..com.x", V4, false),
            ("R", V4, false),
            ("Nk836-t071-fc022", V4, true),
            ("NMyApp1Id", V3, true),
            ("Nbar.app", V4, true),
            ("N", V4, false),
            ("racme", V3, true),
            ("racme", V2a, true),
            ("racme", V4, false),
            ("racme", V5, false),
            ("Xwrong", V4, false),
            ("", V4, false),
            ("Nwith space", V4, false),
            ("Nslash/x", V4, false),
        ];
        for (s, rv, ok) in table {
            assert_eq!(AppId::parse_for_release(s, *rv).is_ok(), *ok, "{s} at {rv:?}");
        }
        assert_eq!(AppId::parse("Ra.b.c").unwrap().kind(), AppIdKind::Registered);
        assert_eq!(AppId::parse("Nx").unwrap().kind(), AppIdKind::NonRegistered);
        assert_eq!(AppId::registered("acme01", "com.acme", "meter").unwrap().as_str(), "Racme01.com.acme.meter");
        assert!(AppId::registered("a.b", "com.acme", "meter").is_err());
    }

    #[test]
    fn ae_id_table() {
        let ok: &[(&str, &str)] = &[
            ("C190XX7T", "stem"),
            ("S190XX7T", "stem"),
            ("/CSE090112/C190XX7T", "sp"),
            ("/S190XX7T", "sp"),
            ("//m2m.prov.com/CSE3219/C9886", "abs"),
            ("//m2m.prov.com/S9886", "abs"),
        ];
        for (s, form) in ok {
            let id = AeId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            let got = match id {
                AeId::Stem(_) => "stem",
                AeId::SpRelative { .. } => "sp",
                AeId::Absolute { .. } => "abs",
            };
            assert_eq!(got, *form, "{s}");
            assert_eq!(id.to_string(), *s);
        }
        for bad in ["C", "S", "X12", "/C12", "/cse/S12", "//sp", "//sp/", "/a/b/C1", "C1 2", ""] {
            assert!(AeId::parse(bad).is_err(), "{bad} should not parse");
        }
        let stem = AeIdStem::parse("Cabc").unwrap();
        let cse = CseId::parse("/id-in").unwrap();
        let sp = SpId::parse("//acme.example.com").unwrap();
        assert_eq!(AeId::sp_relative(&stem, &cse), "/id-in/Cabc");
        assert_eq!(AeId::absolute(&stem, &sp, &cse), "//acme.example.com/id-in/Cabc");
        let s = AeIdStem::parse("Sxyz").unwrap();
        assert_eq!(AeId::absolute(&s, &sp, &cse), "//acme.example.com/Sxyz");
    }

    #[test]
    fn cse_and_sp_ids() {
        assert_eq!(CseId::parse("/id-in").unwrap().as_str(), "/id-in");
        assert_eq!(CseId::parse("id-in").unwrap().as_str(), "/id-in");
        assert_eq!(CseId::parse("/CSE090112").unwrap().name(), "CSE090112");
        for bad in ["", "/", "//x", "/a/b", "/a b"] {
            assert!(CseId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(SpId::parse("//acme.example.com").unwrap().fqdn(), "acme.example.com");
        assert_eq!(SpId::parse("m2m.prov.com").unwrap().as_str(), "//m2m.prov.com");
        for bad in ["//", "//-bad.com", "//a..b", "//a_b.com", "//a/b"] {
            assert!(SpId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resource_names() {
        assert!(ResourceName::parse("testAE").is_ok());
        assert!(ResourceName::parse("a-b.c_d~e").is_ok());
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(300)] {
            assert!(ResourceName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn originators() {
        assert_eq!(Originator::parse("").unwrap(), Originator::Empty);
        assert_eq!(Originator::parse("C").unwrap(), Originator::NewC);
        assert_eq!(Originator::parse("S").unwrap(), Originator::NewS);
        assert!(matches!(Originator::parse("CAdmin").unwrap(), Originator::Ae(AeId::Stem(_))));
        assert!(matches!(Originator::parse("/id-in/Cx").unwrap(), Originator::Ae(AeId::SpRelative { .. })));
        assert!(matches!(Originator::parse("/id-mn").unwrap(), Originator::Cse { sp: None, .. }));
        assert!(matches!(Originator::parse("id-mn").unwrap(), Originator::Cse { sp: None, .. }));
        assert!(matches!(Originator::parse("//sp.com/id-mn").unwrap(), Originator::Cse { sp: Some(_), .. }));
        assert!(Originator::parse("a b").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("C*", "Cabc"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("C?b*", "Cabxyz"));
        assert!(wildcard_match("C?b*", "Cbb"));
        assert!(!wildcard_match("C?b*", "Cb"));
        assert!(wildcard_match("Cehr*", "Cehr"));
        assert!(!wildcard_match("S*", "Cabc"));
        assert!(wildcard_match("*x*y", "axbxcy"));
        assert!(!wildcard_match("*x*y", "axbxc"));
        assert!(wildcard_match("exact", "exact") && !wildcard_match("exact", "exac"));
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("cse-in/ae").unwrap(), Target::CseRelative("cse-in/ae"));
        assert_eq!(Target::parse("-/ae").unwrap(), Target::CseRelative("-/ae"));
        assert_eq!(Target::parse("cin00856").unwrap(), Target::CseRelative("cin00856"));
        assert_eq!(Target::parse("/id-in/cse-in/ae").unwrap(), Target::SpRelative { csi: "id-in", path: "cse-in/ae" });
        assert_eq!(Target::parse("/id-in").unwrap(), Target::SpRelative { csi: "id-in", path: "" });
        assert_eq!(
            Target::parse("//acme.com/id-in/C123").unwrap(),
            Target::Absolute { spi: "acme.com", csi: "id-in", path: "C123" }
        );
        assert!(Target::parse("").is_err());
        assert!(Target::parse("//acme.com").is_err());
        assert!(Target::parse("/").is_err());
    }

    fn seg() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~-]{1,20}"
    }

    proptest! {
        #[test]
        fn app_id_display_parse(auth in "[A-Za-z0-9_~-]{1,10}", dns in "[a-z]{1,8}\\.[a-z]{1,8}", name in "[A-Za-z0-9_~-]{1,20}") {
            let id = AppId::registered(&auth, &dns, &name).unwrap();
            prop_assert_eq!(AppId::parse(id.as_str()).unwrap(), id);
        }

        #[test]
        fn non_registered_display_parse(rest in seg()) {
            let id = AppId::parse(&format!("N{rest}")).unwrap();
            prop_assert_eq!(AppId::parse(id.as_str()).unwrap(), id);
        }

        #[test]
        fn ae_id_display_parse(c in prop::bool::ANY, rest in seg(), cse in seg(), form in 0..3u8) {
            let stem = AeIdStem::parse(&format!("{}{rest}", if c { 'C' } else { 'S' })).unwrap();
            let cse = CseId::parse(&cse).unwrap();
            let sp = SpId::parse("//acme.example.com").unwrap();
            let s = match form {
                0 => stem.to_string(),
                1 => AeId::sp_relative(&stem, &cse),
                _ => AeId::absolute(&stem, &sp, &cse),
            };
            let id = AeId::parse(&s).unwrap();
            prop_assert_eq!(id.to_string(), s.clone());
            prop_assert_eq!(AeId::parse(&id.to_string()).unwrap(), id);
        }

        #[test]
        fn cse_id_display_parse(name in seg()) {
            let id = CseId::parse(&name).unwrap();
            prop_assert_eq!(CseId::parse(id.as_str()).unwrap(), id);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = AppId::parse(&s);
            let _ = AeId::parse(&s);
            let _ = Originator::parse(&s);
            let _ = Target::parse(&s);
            let _ = SpId::parse(&s);
        }
    }
}
