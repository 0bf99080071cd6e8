//! The `warden` binary's integration tests: one binary, one module per area.

mod cse;
