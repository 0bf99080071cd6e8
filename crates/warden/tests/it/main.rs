//! The `warden` binary, black-box: each test runs the built binary as a user would.

mod appid;
mod support;
