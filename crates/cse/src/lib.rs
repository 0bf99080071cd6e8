//! The CSE: a oneM2M resource tree served over HTTP, with persistence, access control,
//! notifications and admission against the App-ID Registry.
#![forbid(unsafe_code)]

pub mod config;
pub mod core;
pub mod notify;
pub mod resource;
pub mod store;
