//! The registry end to end over HTTP on 127.0.0.1:0. (The store suite runs in the unit tests of
//! each backend: `src/store/suite.rs`.)

mod api;
mod errors;
mod feed;
mod helpers;
mod openapi;
mod persistence;
mod signatures;
