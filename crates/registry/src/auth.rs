//! Bearer tokens: generated at random, stored and compared as SHA-256 hashes, checked against an
//! in-memory table (one hash per request, no database read).

use std::collections::HashMap;

use appid::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

/// The SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token: 32 bytes from the OS, base64url (43 characters), prefixed `wrt_` so that it
/// is recognisable in a leaked config.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(format!("wrt_{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// Why a request was not authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header, or an unknown token: 401.
    Unauthenticated,
    /// A valid token whose role may not do this: 403.
    Forbidden,
}

/// The tokens that are valid now, by hash.
#[derive(Debug, Default)]
pub struct TokenTable {
    by_hash: RwLock<HashMap<[u8; 32], Role>>,
}

impl TokenTable {
    pub fn insert(&self, hash: [u8; 32], role: Role) {
        self.by_hash.write().insert(hash, role);
    }

    /// The role of the bearer of `authorization` (the header's value), if it is at least `need`.
    pub fn check(&self, authorization: Option<&[u8]>, need: Role) -> Result<Role, AuthError> {
        let token = authorization.and_then(bearer).ok_or(AuthError::Unauthenticated)?;
        let role = *self.by_hash.read().get(&hash_token(token)).ok_or(AuthError::Unauthenticated)?;
        if role >= need { Ok(role) } else { Err(AuthError::Forbidden) }
    }
}

/// The token in `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_schemes() {
        let t = TokenTable::default();
        t.insert(hash_token("adm"), Role::Admin);
        t.insert(hash_token("rd"), Role::Read);
        assert_eq!(t.check(Some(b"Bearer adm"), Role::Admin), Ok(Role::Admin));
        assert_eq!(t.check(Some(b"bearer  adm "), Role::Read), Ok(Role::Admin));
        assert_eq!(t.check(Some(b"Bearer rd"), Role::Read), Ok(Role::Read));
        assert_eq!(t.check(Some(b"Bearer rd"), Role::Admin), Err(AuthError::Forbidden));
        assert_eq!(t.check(Some(b"Bearer nope"), Role::Read), Err(AuthError::Unauthenticated));
        assert_eq!(t.check(Some(b"Basic adm"), Role::Read), Err(AuthError::Unauthenticated));
        assert_eq!(t.check(Some(b"Bearer"), Role::Read), Err(AuthError::Unauthenticated));
        assert_eq!(t.check(Some(b"\xff"), Role::Read), Err(AuthError::Unauthenticated));
        assert_eq!(t.check(None, Role::Read), Err(AuthError::Unauthenticated));
    }

    #[test]
    fn generated_tokens_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 43);
    }
}
