//! The `warden` binary, black-box: each test runs the built binary as a user would. One module per
//! area.

mod appid;
mod cse;
mod support;
mod up;
