//! SHA-256 fingerprints of DER certificates: how a registry profile names a root
//! (`authentication.roots[].sha256`) and how the CSE names a device's credential.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 of a certificate's DER encoding. Displayed as 64 lowercase hex digits; parsed from hex
/// in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (upper or lower case), as found in a registry profile.
    pub fn from_hex(s: &str) -> Result<Self, FingerprintError> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(FingerprintError);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Ok(Self(out))
    }

    /// The lowercase hex form (the same as `to_string()`).
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

fn hex_value(c: u8) -> Result<u8, FingerprintError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(FingerprintError),
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 fingerprint is 64 hex digits")]
pub struct FingerprintError;

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, FingerprintError> {
        Self::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let f = Fingerprint::of(b"abc");
        assert_eq!(f.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(f.to_hex(), f.to_string());
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let f = Fingerprint::of(b"warden");
        assert_eq!(Fingerprint::from_hex(&f.to_hex()), Ok(f));
        assert_eq!(Fingerprint::from_hex(&f.to_hex().to_uppercase()), Ok(f));
        assert_eq!(f.to_hex().parse::<Fingerprint>(), Ok(f));
        assert_eq!(Fingerprint::from_bytes(*f.as_bytes()), f);
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64), &format!("{}é", "0".repeat(62))] {
            assert_eq!(Fingerprint::from_hex(bad), Err(FingerprintError), "{bad:?}");
        }
    }
}
