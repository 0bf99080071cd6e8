//! Ed25519 signatures over response bodies, with key ids (DESIGN.md §6).
//!
//! The registry signs the exact bytes of a response body and sends the signature in the header
//! `Warden-Signature: keyid="<kid>", alg="ed25519", sig="<base64url, no padding>"`. A [`KeySet`]
//! holds every key that is currently valid (rotation keeps old keys published until they are
//! retired) and (de)serialises as the `GET /v1/keys` body.
//!
//! Signing goes through aws-lc-rs (already in the tree for rustls), about twice as fast as
//! ed25519-dalek here, which matters because every distinct lookup answer is signed; Ed25519
//! signatures are deterministic (RFC 8032), so both give the same bytes (tested). Verification uses
//! ed25519-dalek's `verify_strict`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The response header that carries the signature.
pub const SIGNATURE_HEADER: &str = "warden-signature";
/// The only algorithm.
pub const ALG: &str = "ed25519";
/// Longest key id.
pub const MAX_KID_LEN: usize = 64;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    #[error("unsupported signature algorithm {0:?}")]
    UnsupportedAlg(String),
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    #[error("the signature does not match the body")]
    Invalid,
}

/// A key id: 1–64 characters from `A-Z a-z 0-9 - . _`, so it never needs quoting.
pub fn check_kid(kid: &str) -> Result<(), &'static str> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return Err("a key id has 1 to 64 characters");
    }
    if !kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        return Err("a key id uses only A-Z a-z 0-9 - . _");
    }
    Ok(())
}

/// A signing key and its id.
pub struct Signer {
    kid: String,
    key: SigningKey,
    fast: aws_lc_rs::signature::Ed25519KeyPair,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a 32-byte Ed25519 secret (seed). The caller supplies the randomness: this crate
    /// does no I/O.
    pub fn from_seed(kid: &str, seed: [u8; 32]) -> Result<Self, &'static str> {
        check_kid(kid)?;
        let fast =
            aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| "not an Ed25519 seed")?;
        Ok(Self { kid: kid.to_owned(), key: SigningKey::from_bytes(&seed), fast })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The secret seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The `Warden-Signature` header value for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let sig = self.fast.sign(body);
        format!(r#"keyid="{}", alg="{ALG}", sig="{}""#, self.kid, URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// The same signature computed by ed25519-dalek (the reference, for tests).
    #[cfg(test)]
    fn sign_reference(&self, body: &[u8]) -> [u8; 64] {
        ed25519_dalek::Signer::sign(&self.key, body).to_bytes()
    }
}

/// The parts of a `Warden-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    pub keyid: &'a str,
    pub alg: &'a str,
    pub sig: &'a str,
}

impl<'a> SignatureHeader<'a> {
    /// Parses `keyid="…", alg="…", sig="…"` (in any order, each once; other parameters are refused).
    pub fn parse(header: &'a str) -> Result<Self, SignatureError> {
        let (mut keyid, mut alg, mut sig) = (None, None, None);
        for part in header.split(',') {
            let part = part.trim();
            let (name, value) = part.split_once('=').ok_or(SignatureError::Malformed("expected name=\"value\""))?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.contains('"'))
                .ok_or(SignatureError::Malformed("values are quoted"))?;
            let slot = match name.trim() {
                "keyid" => &mut keyid,
                "alg" => &mut alg,
                "sig" => &mut sig,
                _ => return Err(SignatureError::Malformed("unknown parameter")),
            };
            if slot.replace(value).is_some() {
                return Err(SignatureError::Malformed("a parameter is repeated"));
            }
        }
        Ok(Self {
            keyid: keyid.ok_or(SignatureError::Malformed("no keyid"))?,
            alg: alg.ok_or(SignatureError::Malformed("no alg"))?,
            sig: sig.ok_or(SignatureError::Malformed("no sig"))?,
        })
    }
}

/// The keys that verify signatures, by key id; several may be valid at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key.
    pub fn insert(&mut self, kid: &str, key: VerifyingKey) -> Result<(), &'static str> {
        check_kid(kid)?;
        self.keys.insert(kid.to_owned(), key);
        Ok(())
    }

    pub fn remove(&mut self, kid: &str) -> bool {
        self.keys.remove(kid).is_some()
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that `header` is a valid signature of exactly `body` by one of these keys
    /// (strict Ed25519 verification: no malleable or small-order signatures).
    pub fn verify(&self, body: &[u8], header: &str) -> Result<(), SignatureError> {
        let h = SignatureHeader::parse(header)?;
        if h.alg != ALG {
            return Err(SignatureError::UnsupportedAlg(h.alg.to_owned()));
        }
        let key = self.keys.get(h.keyid).ok_or_else(|| SignatureError::UnknownKey(h.keyid.to_owned()))?;
        let raw = decode_b64url(h.sig).ok_or(SignatureError::Malformed("sig is not base64url"))?;
        let sig = Signature::from_slice(&raw).map_err(|_| SignatureError::Malformed("sig is not 64 bytes"))?;
        key.verify_strict(body, &sig).map_err(|_| SignatureError::Invalid)
    }
}

/// Base64url, with or without padding.
fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    if s.ends_with('=') { URL_SAFE.decode(s).ok() } else { URL_SAFE_NO_PAD.decode(s).ok() }
}

/// One entry of `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// Base64url (no padding) of the 32-byte public key.
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysBody {
    keys: Vec<KeyInfo>,
}

impl KeySet {
    /// The entries of `GET /v1/keys`, in key id order.
    pub fn infos(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .map(|(kid, k)| KeyInfo {
                kid: kid.clone(),
                alg: ALG.to_owned(),
                public_key: URL_SAFE_NO_PAD.encode(k.to_bytes()),
            })
            .collect()
    }
}

impl Serialize for KeySet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KeysBody { keys: self.infos() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let body = KeysBody::deserialize(d)?;
        let mut set = KeySet::new();
        for info in body.keys {
            if info.alg != ALG {
                return Err(D::Error::custom(format!("key {:?}: unsupported alg {:?}", info.kid, info.alg)));
            }
            let raw = decode_b64url(&info.public_key)
                .ok_or_else(|| D::Error::custom(format!("key {:?}: publicKey is not base64url", info.kid)))?;
            let bytes: [u8; 32] = raw
                .try_into()
                .map_err(|_| D::Error::custom(format!("key {:?}: publicKey is not 32 bytes", info.kid)))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| D::Error::custom(format!("key {:?}: not an Ed25519 public key", info.kid)))?;
            if set.keys.contains_key(&info.kid) {
                return Err(D::Error::custom(format!("key {:?} is listed twice", info.kid)));
            }
            set.insert(&info.kid, key).map_err(D::Error::custom)?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer(kid: &str, n: u8) -> Signer {
        Signer::from_seed(kid, [n; 32]).unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let a = signer("k1", 1);
        let b = signer("k2", 2);
        let mut set = KeySet::new();
        set.insert(a.kid(), a.verifying_key()).unwrap();
        set.insert(b.kid(), b.verifying_key()).unwrap();
        let body = br#"{"appId":"Ra.b.c"}"#;
        let h = a.sign(body);
        assert!(h.starts_with(r#"keyid="k1", alg="ed25519", sig=""#), "{h}");
        assert_eq!(set.verify(body, &h), Ok(()));
        assert_eq!(set.verify(body, &b.sign(body)), Ok(()), "both keys are valid at once");

        let mut changed = body.to_vec();
        changed[3] ^= 1;
        assert_eq!(set.verify(&changed, &h), Err(SignatureError::Invalid));

        let unknown = signer("k3", 3).sign(body);
        assert_eq!(set.verify(body, &unknown), Err(SignatureError::UnknownKey("k3".into())));

        // a known kid with another key's signature
        let forged = signer("k1", 9).sign(body);
        assert_eq!(set.verify(body, &forged), Err(SignatureError::Invalid));

        set.remove("k1");
        assert_eq!(set.verify(body, &h), Err(SignatureError::UnknownKey("k1".into())));
    }

    #[test]
    fn both_implementations_give_the_same_signature() {
        for (seed, body) in [([1u8; 32], &b""[..]), ([2; 32], b"x"), ([0xab; 32], &[7u8; 5000][..])] {
            let s = Signer::from_seed("k", seed).unwrap();
            let h = s.sign(body);
            let sig = SignatureHeader::parse(&h).unwrap().sig.to_owned();
            assert_eq!(URL_SAFE_NO_PAD.decode(sig).unwrap(), s.sign_reference(body).to_vec());
        }
    }

    #[test]
    fn header_parsing() {
        let ok = SignatureHeader::parse(r#"sig="abc",  keyid="k" ,alg="ed25519""#).unwrap();
        assert_eq!((ok.keyid, ok.alg, ok.sig), ("k", "ed25519", "abc"));
        for bad in [
            "",
            r#"keyid="k", alg="ed25519""#,
            r#"keyid="k", alg="ed25519", sig="a", sig="b""#,
            r#"keyid=k, alg="ed25519", sig="a""#,
            r#"keyid="k", alg="ed25519", sig="a", extra="x""#,
        ] {
            assert!(SignatureHeader::parse(bad).is_err(), "{bad}");
        }
        let set = KeySet::new();
        assert!(matches!(set.verify(b"x", r#"keyid="k", alg="rsa", sig="a""#), Err(SignatureError::UnsupportedAlg(_))));
        let mut set = KeySet::new();
        let a = signer("k", 1);
        set.insert("k", a.verifying_key()).unwrap();
        assert!(matches!(set.verify(b"x", r#"keyid="k", alg="ed25519", sig="!!""#), Err(SignatureError::Malformed(_))));
        assert!(matches!(
            set.verify(b"x", r#"keyid="k", alg="ed25519", sig="AAAA""#),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn kids() {
        assert!(Signer::from_seed("", [0; 32]).is_err());
        assert!(Signer::from_seed("a\"b", [0; 32]).is_err());
        assert!(Signer::from_seed(&"k".repeat(65), [0; 32]).is_err());
        assert!(Signer::from_seed("2026-11-28.a_1", [0; 32]).is_ok());
        assert!(!format!("{:?}", signer("k", 7)).contains("07"), "Debug shows no key material");
    }

    #[test]
    fn keyset_json_shape() {
        let a = signer("k1", 1);
        let mut set = KeySet::new();
        set.insert("k1", a.verifying_key()).unwrap();
        let json = serde_json::to_value(&set).unwrap();
        let pk = URL_SAFE_NO_PAD.encode(a.verifying_key().to_bytes());
        assert_eq!(json, serde_json::json!({"keys": [{"kid": "k1", "alg": "ed25519", "publicKey": pk}]}));
        let back: KeySet = serde_json::from_value(json).unwrap();
        assert_eq!(back, set);
        for bad in [
            serde_json::json!({"keys": [{"kid": "k1", "alg": "rsa", "publicKey": pk}]}),
            serde_json::json!({"keys": [{"kid": "k1", "alg": "ed25519", "publicKey": "AAAA"}]}),
            serde_json::json!({"keys": [{"kid": "k1", "alg": "ed25519", "publicKey": pk}, {"kid": "k1", "alg": "ed25519", "publicKey": pk}]}),
            serde_json::json!({"keys": [], "extra": 1}),
        ] {
            assert!(serde_json::from_value::<KeySet>(bad.clone()).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_fails(body in proptest::collection::vec(any::<u8>(), 1..200), idx in any::<usize>(), bit in 0u8..8) {
            let a = signer("k", 5);
            let mut set = KeySet::new();
            set.insert("k", a.verifying_key()).unwrap();
            let h = a.sign(&body);
            prop_assert!(set.verify(&body, &h).is_ok());
            let mut bad = body.clone();
            let i = idx % bad.len();
            bad[i] ^= 1 << bit;
            prop_assert_eq!(set.verify(&bad, &h), Err(SignatureError::Invalid));
        }
    }
}
