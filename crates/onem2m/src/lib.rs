//! The oneM2M wire model: what a CSE and its peers say to each other, independent of any binding.
//!
//! # Layout
//! - [`id`]: identifiers (App-ID, AE-ID, CSE-ID, SP-ID, resource names, originators, targets), each a
//!   type that can only hold a valid value.
//! - [`rsc`]: response status codes and their HTTP statuses.
//! - [`types`]: operations, resource types and the other enumerations.
//! - [`time`]: the oneM2M timestamp.
//! - [`primitive`]: request and response primitives, filter criteria, notifications, errors.
//! - [`codec`]: JSON and CBOR.
//!
//! # Architecture invariant
//! This crate does no I/O and reads no clock: callers pass `now` where time matters.
#![forbid(unsafe_code)]

pub mod attrs;
pub mod codec;
pub mod id;
pub mod primitive;
pub mod rsc;
pub mod time;
pub mod types;

pub use codec::Serialization;
pub use id::{AeId, AeIdStem, AppId, AppIdKind, CseId, IdError, Originator, ResourceName, SpId, StemKind, Target};
pub use primitive::{
    AbsRelTime, AttributeFilter, Error, FilterCriteria, Notification, NotificationEvent, Request, Response,
    ResponseTypeInfo,
};
pub use rsc::Rsc;
pub use time::Timestamp;
pub use types::{
    ACOP_ALL, ACOP_DISCOVERY, CseType, DesiredIdResultType, FilterOperation, FilterUsage, NotificationContentType,
    NotificationEventType, Operation, ReleaseVersion, ResourceType, ResponseType, ResultContent,
};

/// Tables of the shared docs kept as text in `src/testdata`, so that the tests run without them.
#[cfg(test)]
pub(crate) mod spec_copy {
    /// Where ONEM2M.md is when the shared docs sit beside the repository (as for developers and CI).
    const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/docs/ONEM2M.md");

    /// Asserts that `copy` is, line for line, a table of ONEM2M.md, when ONEM2M.md is there.
    pub(crate) fn assert_is_in_the_docs(copy: &str) {
        let Ok(docs) = std::fs::read_to_string(DOCS) else { return };
        let table: String = copy.lines().map(|l| format!("{l}\n")).collect();
        assert!(docs.contains(&table), "a table in src/testdata differs from {DOCS}; copy it again");
    }
}
