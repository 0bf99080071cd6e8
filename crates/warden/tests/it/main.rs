//! The `warden` binary, black-box: each test runs the built binary as a user would, through the one
//! harness in `support` (which also tests itself). One module per area.

mod appid;
mod cse;
mod support;
mod up;
