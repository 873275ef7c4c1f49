//! The integration tests of the `arbiter` binary: each starts the real binary on a real store.

// Tests and benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod helpers;
mod smoke;
