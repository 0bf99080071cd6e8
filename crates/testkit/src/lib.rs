//! Test support shared by the crates' integration tests: a PKI made at run time, the registry and
//! the CSE started on 127.0.0.1:0 with temporary data, a notification sink, a fault-injecting proxy
//! for the registry, and a small oneM2M HTTP client. Helpers panic on failure, as test helpers may.
#![forbid(unsafe_code)]

pub mod cse;
pub mod m2m;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod sink;
