//! The `warden` binary's integration tests: each module drives the real binary.

mod up;
