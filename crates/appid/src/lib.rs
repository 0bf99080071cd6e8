//! The App-ID profile and everything about it that needs no I/O: its types and validation, the
//! Ed25519 signatures over registry answers, device deny patterns, and the bodies of the registry API that the server and its clients share.
//!
//! # Layout
//! - [`profile`]: [`Record`] (what the registry stores and serves) and [`Draft`] (what a client
//!   sends), with validation that names the failing field ([`FieldError`]).
//! - [`sign`]: [`Signer`] and [`KeySet`]: the `Warden-Signature` header and `GET /v1/keys`.
//! - [`api`]: lookup, change feed, errors, list pages and the admin calls' bodies.
//! - [`import`]: the checks of a bulk import's lines, shared by the registry and the CLI.
//! - [`pattern`]: `*` patterns over AE-IDs and originators.
//!
//! The certificate SAN convention (`urn:onem2m:app-id:<App-ID>`) lives in the `pki` crate, with the
//! code that writes and reads certificates.
//!
//! # Architecture invariant
//! This crate does no I/O, reads no clock and draws no random numbers: callers pass `now` and seeds.
#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod import;
pub mod pattern;
pub mod profile;
pub mod sign;

pub use api::{
    ApiError, Change, ChangeKind, ChangesPage, DeviceRequest, DeviceStatus, ImportResponse, ListPage, LookupRequest,
    LookupResponse, Role, RotateResponse, StatusRequest, TokenRequest, TokenResponse,
};
pub use error::{BODY, FieldError, FieldErrorKind};
pub use import::ImportCheck;
pub use profile::{
    AppClass, Application, AuthMethod, Authentication, Binding, CommClass, Communications, Container, DataCategory,
    DataModel, DataPrivacy, Devices, Draft, Issue, KeyStorage, Record, Registrant, Root, Security, Sharing, Status,
    TlsVersion, parse_draft, parse_record,
};
pub use sign::{KeyInfo, KeySet, SIGNATURE_HEADER, SignatureError, Signer};
