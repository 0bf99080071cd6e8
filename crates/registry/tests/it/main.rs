//! The registry end to end over HTTP on 127.0.0.1:0, and the store suite.

mod api;
mod feed;
mod helpers;
mod openapi;
mod persistence;
mod signatures;
mod store_suite;
