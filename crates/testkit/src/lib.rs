#![forbid(unsafe_code)]

pub mod pki;
