//! The integration tests of the `arbiter` binary: each starts the real binary on a real store.

// Tests and benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_api;
mod authzen;
mod bad_input;
mod checks;
mod conformance;
mod durability;
mod escalation;
mod gateway;
mod grants;
mod helpers;
mod isolation;
mod keys;
mod operability;
mod replicas;
mod review_fixes;
mod roles_bindings;
mod scopes;
mod smoke;
mod telemetry;
