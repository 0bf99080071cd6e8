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

    /// Parses an Absolute-CSE-ID, `{SP-ID}{SP-relative-CSE-ID}` such as `//m2m.prov.com/C3219`.
    pub fn parse_absolute(s: &str) -> Result<(SpId, CseId), IdError> {
        const K: &str = "Absolute-CSE-ID";
        let Some(rest) = s.strip_prefix("//") else {
            return err(K, s, "an absolute CSE-ID is //{fqdn}/{cse-id}");
        };
        let Some(i) = rest.find('/') else {
            return err(K, s, "an absolute CSE-ID is //{fqdn}/{cse-id}");
        };
        let sp = SpId::from_fqdn(&rest[..i], s)?;
        let cse = CseId::parse(&rest[i..])?;
        Ok((sp, cse))
    }
}

string_id!(
    /// An M2M-SP-ID, `//` followed by an FQDN, e.g. `//acme.example.com`.
    SpId,
    "SP-ID"
);

impl SpId {
    /// Parses `//fqdn`: ONEM2M.md §1 knows only this absolute form. A configuration file that
    /// allows the bare FQDN adds the `//` itself.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.strip_prefix("//") {
            Some(fqdn) => Self::from_fqdn(fqdn, s),
            None => err("SP-ID", s, "an SP-ID is // followed by an FQDN"),
        }
    }

    /// The SP-ID of `fqdn`; `whole` is the text it came from, for the error.
    fn from_fqdn(fqdn: &str, whole: &str) -> Result<Self, IdError> {
        const K: &str = "SP-ID";
        if fqdn.is_empty() || fqdn.len() > 253 {
            return err(K, whole, "the FQDN must have 1 to 253 characters");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !fqdn.split('.').all(label_ok) {
            return err(K, whole, "not a valid FQDN");
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
            let sp = SpId::from_fqdn(sp, s)?;
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
        if s.starts_with("//") {
            let (sp, cse) = CseId::parse_absolute(s)?;
            return Ok(Originator::Cse { sp: Some(sp), cse });
        } else if s.starts_with('/') {
            return Ok(Originator::Cse { sp: None, cse: CseId::parse(s)? });
        } else if s.chars().all(is_unreserved) {
            // A bare CSE name such as `id-mn`, as ACME's tests send it.
            return Ok(Originator::Cse { sp: None, cse: CseId::parse(s)? });
        }
        err("originator", s, "not an AE-ID, a CSE-ID, 'C', 'S' or empty")
    }
}

/// The `From` value that parses back to the same originator. (The forms overlap: `/S1` is both an
/// SP-relative AE-ID and an SP-relative CSE-ID, and [`Originator::parse`] reads it as the AE-ID.)
impl fmt::Display for Originator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Originator::Empty => Ok(()),
            Originator::NewC => f.write_str("C"),
            Originator::NewS => f.write_str("S"),
            Originator::Ae(ae) => write!(f, "{ae}"),
            Originator::Cse { sp: Some(sp), cse } => write!(f, "{sp}{cse}"),
            Originator::Cse { sp: None, cse } => write!(f, "{cse}"),
        }
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

    /// Which identifier a row of the §1 table is.
    #[derive(Debug, Clone, Copy)]
    enum Form {
        SpId,
        SpRelativeCseId,
        AbsoluteCseId,
        Stem,
        SpRelativeAeId,
        AbsoluteAeId,
        AppId,
    }

    /// Parses `s` as `form` and displays it again.
    fn parse_as(form: Form, s: &str) -> Result<String, IdError> {
        Ok(match form {
            Form::SpId => SpId::parse(s)?.to_string(),
            Form::SpRelativeCseId => {
                if !s.starts_with('/') {
                    return err("CSE-ID", s, "an SP-relative CSE-ID starts with /");
                }
                CseId::parse(s)?.to_string()
            }
            Form::AbsoluteCseId => {
                let (sp, cse) = CseId::parse_absolute(s)?;
                format!("{sp}{cse}")
            }
            Form::Stem => AeIdStem::parse(s)?.to_string(),
            Form::SpRelativeAeId => match AeId::parse(s)? {
                id @ AeId::SpRelative { .. } => id.to_string(),
                _ => return err("AE-ID", s, "not SP-relative"),
            },
            Form::AbsoluteAeId => match AeId::parse(s)? {
                id @ AeId::Absolute { .. } => id.to_string(),
                _ => return err("AE-ID", s, "not absolute"),
            },
            Form::AppId => AppId::parse(s)?.to_string(),
        })
    }

    /// Every form of ONEM2M.md §1's table, with its examples and what must not parse as it.
    #[test]
    fn the_forms_of_the_spec_table() {
        use Form::*;
        let valid: &[(Form, &str)] = &[
            (SpId, "//acme.example.com"),
            (SpId, "//m2m.prov.com"),
            (SpRelativeCseId, "/id-in"),
            (SpRelativeCseId, "/CSE090112"),
            (AbsoluteCseId, "//m2m.prov.com/C3219"),
            (AbsoluteCseId, "//acme.example.com/id-in"),
            (Stem, "C190XX7T"),
            (Stem, "S190XX7T"),
            (SpRelativeAeId, "/CSE090112/C190XX7T"),
            (SpRelativeAeId, "/S190XX7T"),
            (AbsoluteAeId, "//m2m.prov.com/CSE3219/C9886"),
            (AbsoluteAeId, "//m2m.prov.com/S9886"),
            (AppId, "Ra01.com.company.smartcity"),
            (AppId, "Nk836-t071-fc022"),
        ];
        for (form, s) in valid {
            assert_eq!(parse_as(*form, s).as_deref(), Ok(*s), "{form:?} {s}");
        }
        let invalid: &[(Form, &str)] = &[
            (SpId, "acme.example.com"), // only the absolute form exists
            (SpId, "/acme.example.com"),
            (SpId, "//acme_example.com"),
            (SpId, "//"),
            (SpRelativeCseId, "id-in"),
            (SpRelativeCseId, "/id in"),
            (SpRelativeCseId, "//id-in"),
            (AbsoluteCseId, "//m2m.prov.com"),
            (AbsoluteCseId, "/m2m.prov.com/C3219"),
            (AbsoluteCseId, "//m2m.prov.com/a/b"),
            (Stem, "X190XX7T"), // every other first character is reserved
            (Stem, "C"),
            (Stem, "S"),
            (SpRelativeAeId, "/C190XX7T"),           // a C-stem needs its Registrar CSE
            (SpRelativeAeId, "/CSE090112/S190XX7T"), // an S-stem has none
            (SpRelativeAeId, "C190XX7T"),
            (AbsoluteAeId, "m2m.prov.com/S9886"),
            (AbsoluteAeId, "//m2m.prov.com/C9886"),
            (AppId, "Ra01.com"),
            (AppId, "racme.com.x"), // lowercase r: only for 2a and 3, see app_id_table
            (AppId, "Xk836"),
            (AppId, "N"),
        ];
        for (form, s) in invalid {
            assert!(parse_as(*form, s).is_err(), "{form:?} {s} should not parse");
        }
    }

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
            ("racme", V2, false),
            ("racme", V1, false),
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
        for bad in ["//", "//-bad.com", "//a..b", "//a_b.com", "//a/b", "m2m.prov.com", "/m2m.prov.com", "///a.com"] {
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
        assert!(matches!(Originator::parse("//m2m.prov.com/C3219").unwrap(), Originator::Cse { sp: Some(_), .. }));
        assert!(matches!(Originator::parse("//m2m.prov.com/S3219").unwrap(), Originator::Ae(AeId::Absolute { .. })));
        for bad in ["a b", "//sp.com", "//sp_x.com/id-mn", "/a/b/c", "//sp.com/a/b/c"] {
            assert!(Originator::parse(bad).is_err(), "{bad}");
        }
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

    /// An FQDN: 1 to 4 labels of letters, digits and inner hyphens.
    fn fqdn() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..5).prop_map(|l| l.join("."))
    }

    fn stem() -> impl Strategy<Value = AeIdStem> {
        (prop::bool::ANY, seg())
            .prop_map(|(c, rest)| AeIdStem::parse(&format!("{}{rest}", if c { 'C' } else { 'S' })).unwrap())
    }

    fn cse_id() -> impl Strategy<Value = CseId> {
        seg().prop_map(|s| CseId::parse(&format!("/{s}")).unwrap())
    }

    fn ae_id() -> impl Strategy<Value = AeId> {
        (stem(), cse_id(), fqdn(), 0..3u8).prop_map(|(stem, cse, fqdn, form)| {
            let cse = (stem.kind() == StemKind::Cse).then_some(cse);
            match form {
                0 => AeId::Stem(stem),
                1 => AeId::SpRelative { cse, stem },
                _ => AeId::Absolute { sp: SpId::parse(&format!("//{fqdn}")).unwrap(), cse, stem },
            }
        })
    }

    proptest! {
        /// Built from its parts: the text parses, displays as itself, and is registered; breaking
        /// any rule of the form makes it fail.
        #[test]
        fn app_id_display_parse(auth in "[A-Za-z0-9_~-]{1,10}", dns in "[a-z]{1,8}\\.[a-z]{1,8}", name in "[A-Za-z0-9_~-]{1,20}") {
            let text = format!("R{auth}.{dns}.{name}");
            let id = AppId::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text.clone());
            prop_assert_eq!(id.kind(), AppIdKind::Registered);
            prop_assert_eq!(AppId::parse(id.as_str()).unwrap(), id.clone());
            prop_assert_eq!(AppId::registered(&auth, &dns, &name).unwrap(), id);
            // only two parts, an empty part, a reserved character, a reserved first letter
            let broken = [
                format!("R{auth}.{name}"),
                format!("R{auth}..{name}"),
                format!("R{auth}.{dns}."),
                format!("R{auth}.{dns}.{name}/x"),
                format!("R{auth}.{dns}.{name} "),
                format!("X{auth}.{dns}.{name}"),
            ];
            for b in &broken {
                prop_assert!(AppId::parse(b).is_err(), "{:?} parsed", b);
            }
            // the lowercase form parses only for 2a and 3
            let lower = format!("r{auth}.{dns}.{name}");
            prop_assert!(AppId::parse(&lower).is_err());
            prop_assert_eq!(AppId::parse_for_release(&lower, ReleaseVersion::V3).unwrap().kind(), AppIdKind::LegacyRegistered);
        }

        #[test]
        fn non_registered_display_parse(rest in seg(), bad in "[^A-Za-z0-9._~-]") {
            let text = format!("N{rest}");
            let id = AppId::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text.clone());
            prop_assert_eq!(id.kind(), AppIdKind::NonRegistered);
            prop_assert_eq!(AppId::parse(id.as_str()).unwrap(), id);
            for b in [format!("N{rest}{bad}"), format!("{bad}{rest}")] {
                prop_assert!(AppId::parse(&b).is_err(), "{:?} parsed", b);
            }
        }

        #[test]
        fn ae_id_display_parse(id in ae_id()) {
            let text = id.to_string();
            prop_assert_eq!(AeId::parse(&text).unwrap(), id.clone());
            // the helpers build the same text
            let (sp, cse) = (SpId::parse("//acme.example.com").unwrap(), CseId::parse("/id-in").unwrap());
            let abs = AeId::absolute(id.stem(), &sp, &cse);
            prop_assert_eq!(AeId::parse(&abs).unwrap().to_string(), abs);
        }

        #[test]
        fn cse_id_display_parse(id in cse_id(), fqdn in fqdn()) {
            let shown = id.to_string();
            prop_assert_eq!(CseId::parse(&shown).unwrap(), id.clone());
            let sp = SpId::parse(&format!("//{fqdn}")).unwrap();
            prop_assert_eq!(CseId::parse_absolute(&format!("{sp}{id}")).unwrap(), (sp, id));
        }

        #[test]
        fn sp_id_display_parse(fqdn in fqdn()) {
            let text = format!("//{fqdn}");
            let id = SpId::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text);
            prop_assert_eq!(id.fqdn(), fqdn.as_str());
            let shown = id.to_string();
            prop_assert_eq!(SpId::parse(&shown).unwrap(), id);
            prop_assert!(SpId::parse(&fqdn).is_err(), "the bare FQDN is not an SP-ID");
        }

        #[test]
        fn resource_name_display_parse(name in seg()) {
            let rn = ResourceName::parse(&name).unwrap();
            prop_assert_eq!(rn.to_string(), name.clone());
            let shown = rn.to_string();
            prop_assert_eq!(ResourceName::parse(&shown).unwrap(), rn);
            let slashed = format!("{name}/x");
            prop_assert!(ResourceName::parse(&slashed).is_err());
        }

        /// Every kind of originator displays as a `From` value that parses back to it. CSE names
        /// starting with `S` are left out: `/S1` reads as the SP-relative AE-ID (see `Display`).
        #[test]
        fn originator_display_parse(
            kind in 0..5u8,
            ae in ae_id(),
            cse in "[A-RT-Za-z0-9._~-][A-Za-z0-9._~-]{0,19}",
            fqdn in fqdn(),
        ) {
            let cse = CseId::parse(&format!("/{cse}")).unwrap();
            let o = match kind {
                0 => Originator::Empty,
                1 => Originator::NewC,
                2 => Originator::NewS,
                3 => Originator::Ae(ae),
                _ => Originator::Cse { sp: (fqdn.len() % 2 == 0).then(|| SpId::parse(&format!("//{fqdn}")).unwrap()), cse },
            };
            let from = o.to_string();
            prop_assert_eq!(Originator::parse(&from).unwrap(), o);
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
