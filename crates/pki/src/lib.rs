//! The dev/test PKI of Warden, and the certificate conventions the CSE relies on.
//!
//! # Layout
//! - [`san`]: the subjectAltName conventions (DESIGN.md §8): the App-ID URI
//!   `urn:onem2m:app-id:<App-ID>` and the absolute AE-ID URI `//<sp-id>/<stem>`; building them, and
//!   reading the claims back from a certificate. This is the one place that knows the format.
//! - [`Fingerprint`]: the SHA-256 of a certificate's DER, in hex: how registry profiles name roots and
//!   how the CSE names a credential.
//! - [`Root`], [`Identity`], [`DeviceSpec`], [`Validity`], [`ServerIdentity`]: certificate
//!   authorities (a vendor's root of trust, the CSE's server CA) and the end-entity certificates they
//!   issue. ECDSA P-256 throughout; device certificates are clientAuth, server certificates serverAuth.
//! - [`PkiDir`]: the on-disk layout `warden pki` writes and `warden up` reads (PEM files, keys 0600).
//!
//! # Architecture invariant
//! Keys are made at run time and never committed; nothing here logs or prints a private key (`Debug`
//! elides them).
#![forbid(unsafe_code)]

mod cert;
mod error;
mod fingerprint;
pub mod san;
mod store;

pub use cert::{DEFAULT_SERVER_NAMES, DeviceSpec, Identity, Root, ServerIdentity, Validity};
pub use error::PkiError;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use store::{CERT_FILE, KEY_FILE, PkiDir, read_pem_pair, write_pem_pair};
