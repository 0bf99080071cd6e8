//! Device deny patterns (`devices.denied`) and originator patterns (`dataPrivacy.allowedRecipients`).
//!
//! A pattern is an AE-ID (or another originator) in which `*` stands for any run of characters, the
//! empty run included. Without a `*` it matches only itself. Matching is case-sensitive, like
//! oneM2M identifiers.
//!
//! For the device deny list, a pattern without `/` is a pattern over AE-ID stems: `S-stolen-*` denies
//! `S-stolen-1` whether the CSE asks about it as `S-stolen-1`, `/S-stolen-1` or
//! `//sp.example/S-stolen-1`. A pattern with `/` is matched against the AE-ID exactly as given.

use onem2m::AeId;
use onem2m::id::is_unreserved;

/// Longest pattern.
pub const MAX_PATTERN_LEN: usize = 255;

/// Checks a device deny pattern: see [`check_chars`]; without `*` it must be an AE-ID.
pub fn check_device_pattern(p: &str) -> Result<(), &'static str> {
    check_chars(p)?;
    if !p.contains('*') && AeId::parse(p).is_err() {
        return Err("neither an AE-ID nor a pattern with *");
    }
    Ok(())
}

/// Checks an originator pattern (a recipient): see [`check_chars`]; without `*` it must be an AE-ID
/// or a CSE-ID.
pub fn check_originator_pattern(p: &str) -> Result<(), &'static str> {
    check_chars(p)?;
    if !p.contains('*') && onem2m::Originator::parse(p).is_err() {
        return Err("neither an originator nor a pattern with *");
    }
    Ok(())
}

/// The form every pattern has: 1–255 characters, each unreserved (`A-Z a-z 0-9 - . _ ~`), `/` or `*`.
pub fn check_chars(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("an empty pattern");
    }
    if p.len() > MAX_PATTERN_LEN {
        return Err("a pattern has at most 255 characters");
    }
    if !p.chars().all(|c| is_unreserved(c) || c == '/' || c == '*') {
        return Err("only A-Z a-z 0-9 - . _ ~ / and the wildcard * are allowed");
    }
    Ok(())
}

/// True if `text` matches `pattern`, where `*` matches any run of characters (patterns here hold no
/// `?`, so this is [`onem2m::id::wildcard_match`]).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    onem2m::id::wildcard_match(pattern, text)
}

/// The first deny pattern that denies the device `ae_id`, if any. See the module doc for how
/// patterns without `/` match the stem.
pub fn denied_by<'a, I>(denied: I, ae_id: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a String>,
{
    let stem = AeId::parse(ae_id).ok().map(|id| id.stem().as_str().to_owned());
    denied
        .into_iter()
        .map(String::as_str)
        .find(|p| glob_match(p, ae_id) || (!p.contains('/') && stem.as_deref().is_some_and(|s| glob_match(p, s))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn glob_table() {
        let table: &[(&str, &str, bool)] = &[
            ("S-stolen-0042", "S-stolen-0042", true),
            ("S-stolen-0042", "S-stolen-00421", false),
            ("S-stolen-*", "S-stolen-", true),
            ("S-stolen-*", "S-stolen-17", true),
            ("S-stolen-*", "S-stole", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("C*1", "C1", true),
            ("C*1", "Cabc1", true),
            ("C*1", "Cabc12", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("a**b", "ab", true),
            ("Cehr*", "Cehr-7", true),
            ("Cehr*", "cehr-7", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (p, t, want) in table {
            assert_eq!(glob_match(p, t), *want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn deny_matches_stems_and_full_forms() {
        let denied = vec!["S-stolen-*".to_owned(), "/id-in/Cbad".to_owned()];
        assert_eq!(denied_by(&denied, "S-stolen-1"), Some("S-stolen-*"));
        assert_eq!(denied_by(&denied, "/S-stolen-1"), Some("S-stolen-*"));
        assert_eq!(denied_by(&denied, "//sp.example.com/S-stolen-1"), Some("S-stolen-*"));
        assert_eq!(denied_by(&denied, "/id-in/Cbad"), Some("/id-in/Cbad"));
        assert_eq!(denied_by(&denied, "Cbad"), None, "a pattern with / matches the full AE-ID only");
        assert_eq!(denied_by(&denied, "Sgood"), None);
        assert_eq!(denied_by(&[], "Sgood"), None);
    }

    #[test]
    fn pattern_forms() {
        for ok in ["S-stolen-0042", "Cdev*", "*", "/id-in/C1", "//sp.com/S1", "C*/x"] {
            assert!(check_device_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["", "with space", "ä*", "X12", "/id-in", &"C".repeat(300)] {
            assert!(check_device_pattern(bad).is_err(), "{bad:?}");
        }
        assert!(check_originator_pattern("/id-in").is_ok());
        assert!(check_originator_pattern("CAdmin").is_ok());
        assert!(check_originator_pattern("a b").is_err());
    }

    /// The obvious recursive definition, to check the fast one against.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_reference(p in "[ab*]{0,8}", t in "[ab]{0,10}") {
            prop_assert_eq!(glob_match(&p, &t), reference(p.as_bytes(), t.as_bytes()));
        }
    }
}
