#![forbid(unsafe_code)]

pub mod net;
pub mod tls;
